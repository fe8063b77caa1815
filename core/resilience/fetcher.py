"""The one path every upstream fetch takes: cache, coalescing, backend protection, retries.

The mount orchestrator hands the fetcher units of work (one object, or a batch of objects of one
backend, endpoint and identity). For each unit the fetcher:

1. looks every object up in the value cache (cache.py, keyed by identity, backend, endpoint,
   name and version selector); hits are answered from memory;
2. joins the misses to identical fetches already in flight (singleflight.py), waiting within
   this mount's deadline; the objects nobody is fetching yet are fetched by this caller, a batch
   backend getting only those in one call;
3. sends that call through the endpoint's guards: the outage gate and retry budget
   (core/resilience/retry.py), the per-service call rate and the per-endpoint concurrency bound
   (core/resilience/ratelimit.py), with jittered backoff inside the deadline;
4. stores each value with the TTL that fits it (pinned versions longer) and hands it to the
   waiters. Errors are shared with current waiters only, never cached.

With the cache disabled (`cache_ttl` 0, `--no-cache`) steps 1, 2 and 4 are skipped: every fetch
is an upstream call, as in the existing provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cachetools import LRUCache

from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    PermissionDenied,
    PluginError,
    ProviderError,
)
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue
from ack_secrets_provider.core.resilience.cache import CacheKey, ValueCache, cache_key
from ack_secrets_provider.core.resilience.deadline import within
from ack_secrets_provider.core.resilience.ratelimit import ConcurrencyLimit, RateLimiter
from ack_secrets_provider.core.resilience.retry import OutageGate, RetryBudget, call_with_retries
from ack_secrets_provider.core.resilience.singleflight import Flight, SingleFlight
from ack_secrets_provider.core.settings import ProviderSettings

#: endpoints whose guards (retry budget, outage gate, concurrency bound) are kept; the least
#: recently used beyond this is forgotten (a node talks to a handful of endpoints)
MAX_ENDPOINT_GUARDS = 1024


@dataclass(frozen=True)
class FetchUnit:
    """Objects fetched in one backend call: one object, or a batch of one endpoint/identity."""

    backend: Backend
    specs: tuple[ObjectSpec, ...]
    context: FetchContext

    def describe(self) -> str:
        if len(self.specs) == 1:
            return self.specs[0].describe()
        names = ", ".join(repr(spec.object_name) for spec in self.specs)
        return f"objects {names} ({self.backend.object_type} batch)"


@dataclass(frozen=True)
class _EndpointGuard:
    """What protects one endpoint (service + dialled address) from this process."""

    budget: RetryBudget
    gate: OutageGate
    concurrency: ConcurrencyLimit


class Fetcher:
    """Fetches units through cache → single-flight → guards → retries. Thread-safe, one per process.

    `metrics` receives the cache and upstream-call metrics; `clock` (monotonic seconds) drives
    cache expiry and the outage gate.
    """

    def __init__(
        self, settings: ProviderSettings, *, metrics: ProviderMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._clock = clock
        self.cache: ValueCache | None = (
            ValueCache(max_entries=max(1, settings.cache_max_entries),
                       max_bytes=max(1, settings.cache_max_bytes), clock=clock)
            if settings.cache_ttl > 0 else None
        )
        self._flights: SingleFlight[CacheKey, SecretValue] = SingleFlight()
        #: LRU-bounded: the dialled address can come from a pod's endpoint fields
        self._guards: LRUCache[tuple[str, str], _EndpointGuard] = LRUCache(MAX_ENDPOINT_GUARDS)
        self._rates: dict[str, RateLimiter] = {}
        #: (service, dialled address, identity) whose batch calls RAM denies (see _read)
        self._batch_denied: LRUCache[tuple[str, str, object], bool] = LRUCache(
            MAX_ENDPOINT_GUARDS)
        self._lock = threading.Lock()

    # -- guards -------------------------------------------------------------------------------

    def _guard(self, unit: FetchUnit) -> _EndpointGuard:
        key = (unit.backend.service, unit.context.endpoint.address)
        with self._lock:
            guard = self._guards.get(key)
            if guard is None:
                budget = RetryBudget.from_policy(self.settings.retry)
                guard = _EndpointGuard(
                    budget=budget,
                    gate=OutageGate(budget, clock=self._clock),
                    concurrency=ConcurrencyLimit(
                        self.settings.endpoint_concurrency,
                        name=f"endpoint {unit.context.endpoint.describe()}",
                    ),
                )
                self._guards[key] = guard
            return guard

    def _rate(self, backend: Backend) -> RateLimiter:
        """The backend's call-rate limiter, set by its own flag (`Backend.rate_limit`)."""
        object_type = backend.object_type
        with self._lock:
            limiter = self._rates.get(object_type)
            if limiter is None:
                declared = backend.rate_limit
                rate = float(self.settings.rate_limits.get(object_type, 0.0) or 0.0)
                limiter = RateLimiter(
                    rate if declared else 0.0,
                    name=declared.what if declared else f"{object_type} calls per second",
                    flag=declared.flag if declared else None,
                )
                self._rates[object_type] = limiter
            return limiter

    # -- the fetch path -----------------------------------------------------------------------

    def cached(self, unit: FetchUnit) -> Sequence[SecretValue] | None:
        """The unit's values when every one is a fresh cache hit, else None (and nothing is
        counted: `fetch` then looks up and counts as usual).

        Cheap and non-blocking, so the mount answers fully cached units on the gRPC handler
        thread instead of handing them to the fetch pool and waiting for a thread to wake up.
        """
        if self.cache is None or not unit.backend.cacheable:
            return None
        values = []
        for spec in unit.specs:
            value = self.cache.get(cache_key(unit.backend, spec, unit.context))
            if value is None:
                return None
            values.append(value)
        self.metrics.record_cache_hit(unit.backend.service, len(values))
        return values

    def fetch(self, unit: FetchUnit) -> Sequence[SecretValue]:
        if self.cache is None or not unit.backend.cacheable:
            return self._read(unit)
        service = unit.backend.service
        keys = [cache_key(unit.backend, spec, unit.context) for spec in unit.specs]
        values: list[SecretValue | None] = [self.cache.get(key) for key in keys]
        missing = [i for i, value in enumerate(values) if value is None]
        if len(missing) < len(keys):
            self.metrics.record_cache_hit(service, len(keys) - len(missing))
        if not missing:
            return _complete(values)
        self.metrics.record_cache_miss(service, len(missing))

        led: list[tuple[int, Flight[SecretValue]]] = []
        waiting: list[tuple[int, Flight[SecretValue]]] = []
        for i in missing:
            flight, leader = self._flights.begin(keys[i])
            (led if leader else waiting).append((i, flight))
        if led:
            # Fetch what nobody else is fetching first, so two mounts waiting on each other's
            # objects can never deadlock.
            sub = FetchUnit(unit.backend, tuple(unit.specs[i] for i, _ in led), unit.context)
            try:
                got = self._read(sub)
            except BaseException as exc:
                # A failed batch may have failed for another object of it (one name denied or
                # missing fails a whole GetSecretParameters call): a waiter for one object of
                # it must not inherit that error, it fetches its object itself instead.
                shared = _shared_error(exc, len(led))
                for i, flight in led:
                    self._flights.finish(keys[i], flight, error=shared)
                raise
            for (i, flight), value in zip(led, got, strict=True):
                self._store(keys[i], value)
                values[i] = value
                self._flights.finish(keys[i], flight, value=value)
        if waiting:
            self.metrics.record_coalesced_wait(service, len(waiting))
        for i, flight in waiting:
            values[i] = self._wait(unit, i, flight)
        return _complete(values)

    def _wait(self, unit: FetchUnit, index: int, flight: Flight[SecretValue]) -> SecretValue:
        spec = unit.specs[index]
        deadline = unit.context.deadline
        try:
            return flight.wait(deadline, spec.describe())
        except DeadlineExceeded:
            if not flight.done:
                raise  # this waiter's own time ran out
            # The leader's caller ran out of time (or gave up); unless this one did too (said
            # for this object: the leader's message may name another pod's), fetch it ourselves.
            deadline.check(spec.describe())
        except _SharedFailure as failure:
            raise failure.for_object(spec.describe()) from None
        except _BatchFailed:
            pass  # the leader's batch failed, maybe for another object: fetch this one alone
        return self.fetch(FetchUnit(unit.backend, (spec,), unit.context))[0]

    def _store(self, key: CacheKey, value: SecretValue) -> None:
        assert self.cache is not None
        ttl = self.settings.cache_pinned_ttl if key.pinned else self.settings.cache_ttl
        self.cache.put(key, value, ttl)

    def _read(self, unit: FetchUnit) -> Sequence[SecretValue]:
        """The unit's values; a batch the upstream refuses is read again object by object.

        A batch API has its own RAM action (OOS GetSecretParameters is oos:GetSecretParameters,
        which the policies written for the official provider, granting oos:GetSecretParameter,
        lack), and one denied object denies the whole call: read alone, each object succeeds or
        fails with its own error. When every one succeeds alone, the batch action itself is
        denied: this identity reads this endpoint object by object from then on, so a denied
        call is not repeated at every mount (each one would raise the permission alert)."""
        if len(unit.specs) == 1:
            return self._upstream(unit)
        key = (unit.backend.service, unit.context.endpoint.address, unit.context.identity.key)
        if key in self._batch_denied:
            return self._one_by_one(unit)
        try:
            return self._upstream(unit)
        except PermissionDenied:
            values = self._one_by_one(unit)
        with self._lock:
            self._batch_denied[key] = True
        return values

    def _one_by_one(self, unit: FetchUnit) -> list[SecretValue]:
        return [self._upstream(FetchUnit(unit.backend, (spec,), unit.context))[0]
                for spec in unit.specs]

    def _upstream(self, unit: FetchUnit) -> Sequence[SecretValue]:
        """One backend call (with retries) through the endpoint's guards."""
        guard = self._guard(unit)
        what = unit.describe()
        deadline = unit.context.deadline
        if deadline.caller_gone:  # nobody to fetch for: not even the outage gate's probe
            deadline.check(what)
        if not guard.gate.admit():
            raise guard.gate.refusal(what, unit.context.endpoint.describe())
        calls = self.metrics.upstream_recorder(unit.backend, batch=len(unit.specs) > 1)
        limiter = self._rate(unit.backend)

        def attempt() -> Sequence[SecretValue]:
            limiter.acquire(deadline, what)
            # calls.attempt(): upstream call/result/latency/retry metrics
            # within(): a credential refresh the SDK triggers mid-call obeys this deadline too
            with guard.concurrency.slot(deadline, what), calls.attempt(), within(deadline):
                if len(unit.specs) == 1:
                    return [unit.backend.fetch(unit.specs[0], unit.context)]
                return unit.backend.fetch_batch(unit.specs, unit.context)

        try:
            values = call_with_retries(
                attempt, deadline=deadline, policy=self.settings.retry,
                budget=guard.budget, what=what,
            )
        except ProviderError as exc:
            if exc.proves_endpoint_alive:  # not found, denied, throttled: the endpoint is up
                guard.gate.record_success()
            elif exc.retryable:
                guard.gate.record_failure(exc)
            raise
        guard.gate.record_success()
        if len(values) != len(unit.specs):
            raise PluginError(
                f"backend {unit.backend.object_type!r} returned {len(values)} values for "
                f"{len(unit.specs)} objects"
            )
        return values


class _BatchFailed(Exception):
    """Handed to waiters of a multi-object call that failed with an object-specific error."""


class _SharedFailure(Exception):
    """A multi-object call's failure that applies to every object (the endpoint or credential is
    down), handed to a waiter of one of them. Its message names the leader's objects, which may
    be another pod's (another namespace's secret names must not reach this pod's error or
    Events, as with the outage gate's refusal): the waiter gets the same class and retry hint,
    worded for its own object."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error

    def for_object(self, what: str) -> ProviderError:
        error = self.error
        return type(error)(
            f"{what}: the call it was fetched in, together with another mount's objects, failed: "
            f"{error.reason} ({error.code.name}); the provider's log has that call's error",
            retry_after=error.retry_after,
        )


def _shared_error(exc: BaseException, objects: int) -> BaseException:
    """What the waiters of a failed call of `objects` objects get (see _wait)."""
    if objects == 1 or isinstance(exc, DeadlineExceeded):
        return exc  # the waiters' own object; or the leader's time, which _wait words anew
    if not _applies_to_all(exc):
        return _BatchFailed()
    assert isinstance(exc, ProviderError)  # _applies_to_all
    return _SharedFailure(exc)


def _applies_to_all(exc: BaseException) -> bool:
    """True for failures that say nothing about one object: the endpoint or credential is down
    (retryable), or the caller's time ran out (waiters handle that themselves)."""
    return isinstance(exc, ProviderError) and (exc.retryable or isinstance(exc, DeadlineExceeded))


def _complete(values: list[SecretValue | None]) -> list[SecretValue]:
    """The values of a unit once every slot is filled (a hole is a bug, not a user error)."""
    done = [value for value in values if value is not None]
    if len(done) != len(values):
        raise PluginError("the fetcher lost an object's value (a provider bug; please report it)")
    return done
