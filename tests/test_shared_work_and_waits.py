"""Shared in-flight work never hands a caller someone else's error, and every wait
for another caller's work is bounded by the waiter's own deadline.

- A waiter that joined one object of a multi-object (OOS batch) call that failed with an
  object-specific error fetches its object itself instead of inheriting the error (the batch may
  have failed for another object: a denied or missing name fails a whole GetSecretParameters).
- Waiting for a credential refresh, an identity build or a ServiceAccount lookup in progress
  ends at the waiter's deadline.
- Per-endpoint guards (keyed by pod-controlled hosts) are bounded.
- The outage gate's refusal does not quote another mount's error (its object names).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from scraped import sample, wait_for

from ack_secrets_provider.auth import kube
from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.cloud.kube import MAX_TIMEOUT, KubeClient
from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    NotFound,
    ProviderError,
    Unavailable,
)
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.plugins.toolkit import IdentityCache, Issued, RefreshingProvider
from ack_secrets_provider.core.resilience import fetcher as fetcher_module
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher, FetchUnit
from ack_secrets_provider.core.resilience.retry import PROBE_INTERVAL, OutageGate, RetryBudget
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

WAIT = 10.0


class GatedBatchBackend(Backend):
    """A batch backend whose first call blocks until released and fails for the name `bad`."""

    object_type = "gated"
    service = "gated"
    max_batch = 10

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[tuple[str, ...]] = []

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        return Endpoint(service="gated", host="gated.local", address="gated.local")

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        return self.fetch_batch([spec], ctx)[0]

    def fetch_batch(self, specs: Sequence[ObjectSpec], ctx: FetchContext) -> list[SecretValue]:
        names = tuple(spec.object_name for spec in specs)
        self.calls.append(names)
        self.started.set()
        assert self.release.wait(WAIT)
        if "bad" in names:
            raise NotFound("objects (gated 'bad'): not found; check objectName")
        return [SecretValue(f"value-of-{name}".encode(), "v1") for name in names]

    def unit(self, *names: str, seconds: float = WAIT,
             cancelled: threading.Event | None = None) -> FetchUnit:
        """One fetch of `names` by the same identity, with `seconds` left on its deadline (and
        `cancelled`: its caller's cancellation, deadline.py)."""
        identity = Identity(IdentityKey(mode="test"), credential=None, provider_level=False)
        ctx = FetchContext(identity, Deadline.after(seconds, cancelled),
                           self.endpoint(spec(0, names[0]), None), self.settings)
        return FetchUnit(self, tuple(spec(i, n) for i, n in enumerate(names)), ctx)


def gated() -> tuple[GatedBatchBackend, Fetcher]:
    """A held batch backend and a caching fetcher (single-flight needs the cache)."""
    settings = ProviderSettings(cache_ttl=60.0)
    return GatedBatchBackend(settings), Fetcher(
        settings, metrics=ProviderMetrics(process_collectors=False))


def spec(index: int, name: str) -> ObjectSpec:
    return ObjectSpec(index=index, object_name=name, object_type="gated", file_name=name)


def wait_until_a_waiter_joins(fetcher: Fetcher, backend: Backend) -> None:
    """Until a second caller waits on the leader's call (the fetcher counts it as a coalesced
    wait in its metrics as it starts waiting)."""
    wait_for(lambda: sample(fetcher.metrics, "ack_secrets_provider_cache_coalesced_waits_total",
                            {"service": backend.service}) >= 1,
             "a second caller joins the leader's call", timeout=WAIT)


def lead_and_wait(fetcher: Fetcher, backend: GatedBatchBackend, leaders: FetchUnit,
                  waiters: FetchUnit) -> dict[str, Any]:
    """The leader's fetch starts (and blocks in the backend), the waiter joins it, then the
    backend is released; what each got (its values or its error), by role."""
    outcomes: dict[str, Any] = {}

    def run(role: str, unit: FetchUnit) -> None:
        try:
            outcomes[role] = fetcher.fetch(unit)
        except BaseException as exc:  # collected for the assertion
            outcomes[role] = exc

    leader = threading.Thread(target=run, args=("leader", leaders))
    leader.start()
    assert backend.started.wait(WAIT)
    waiter = threading.Thread(target=run, args=("waiter", waiters))
    waiter.start()
    wait_until_a_waiter_joins(fetcher, backend)
    backend.release.set()
    leader.join(WAIT)
    waiter.join(WAIT)
    return outcomes


def test_a_waiter_does_not_inherit_a_batch_error_caused_by_another_object() -> None:
    backend, fetcher = gated()
    unit = backend.unit
    leader_error: list[BaseException] = []
    waiter_result: list[Any] = []

    def lead() -> None:
        try:
            fetcher.fetch(unit("good", "bad"))
        except ProviderError as exc:
            leader_error.append(exc)

    def wait() -> None:
        try:
            waiter_result.append(fetcher.fetch(unit("good")))
        except BaseException as exc:  # collected for the assertion
            waiter_result.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    assert backend.started.wait(WAIT)
    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until_a_waiter_joins(fetcher, backend)
    backend.release.set()
    leader.join(WAIT)
    waiter.join(WAIT)
    assert isinstance(leader_error[0], NotFound)
    [values] = waiter_result
    assert not isinstance(values, BaseException), values
    assert [v.data for v in values] == [b"value-of-good"]
    assert backend.calls == [("good", "bad"), ("good",)]


def test_a_waiter_fetches_itself_when_only_the_leaders_caller_ran_out_of_time() -> None:
    backend, fetcher = gated()
    original = backend.fetch_batch

    def leader_times_out_first(specs: Sequence[ObjectSpec], ctx: FetchContext
                               ) -> list[SecretValue]:
        values = original(specs, ctx)
        if len(backend.calls) == 1:  # the leader's call: its caller's deadline passed
            raise DeadlineExceeded("object #1 'shared': the leader's mount deadline passed")
        return values

    backend.fetch_batch = leader_times_out_first  # type: ignore[method-assign]
    outcomes = lead_and_wait(fetcher, backend, backend.unit("shared"), backend.unit("shared"))
    assert isinstance(outcomes["leader"], DeadlineExceeded)
    assert [v.data for v in outcomes["waiter"]] == [b"value-of-shared"]
    assert backend.calls == [("shared",), ("shared",)]


def test_a_waiter_fetches_itself_when_the_leaders_caller_gave_up() -> None:
    """The leader's caller cancels its Mount while the leader's call fails (deadline.py): the
    leader stops retrying, and a waiter whose caller is still there fetches for itself instead
    of inheriting an error nobody else caused."""
    backend, fetcher = gated()
    original = backend.fetch_batch
    cancelled = threading.Event()

    def the_leaders_caller_gives_up(specs: Sequence[ObjectSpec], ctx: FetchContext
                                    ) -> list[SecretValue]:
        values = original(specs, ctx)
        if len(backend.calls) == 1:  # the leader's call fails while its caller gives up
            cancelled.set()
            raise Unavailable("object #1 'shared': the service is unavailable")
        return values

    backend.fetch_batch = the_leaders_caller_gives_up  # type: ignore[method-assign]
    outcomes = lead_and_wait(fetcher, backend, backend.unit("shared", cancelled=cancelled),
                             backend.unit("shared"))
    assert isinstance(outcomes["leader"], DeadlineExceeded)
    assert "the call was cancelled" in outcomes["leader"].message
    assert [v.data for v in outcomes["waiter"]] == [b"value-of-shared"]
    assert backend.calls == [("shared",), ("shared",)]  # the waiter's own, not a leader retry


def test_a_waiter_gives_up_at_its_own_deadline_without_cancelling_the_leader() -> None:
    backend, fetcher = gated()
    led: list[Sequence[SecretValue]] = []
    leader = threading.Thread(target=lambda: led.append(fetcher.fetch(backend.unit("shared"))))
    leader.start()
    assert backend.started.wait(WAIT)  # the leader's call is in progress, held by the backend
    with pytest.raises(DeadlineExceeded, match="object #1.*in flight"):
        fetcher.fetch(backend.unit("shared", seconds=0.2))
    assert leader.is_alive() and not led  # the waiter gave up alone: the leader carries on
    backend.release.set()
    leader.join(WAIT)
    assert [v.data for v in led[0]] == [b"value-of-shared"]
    # the leader's value filled the cache: the next caller needs no call of its own
    assert [v.data for v in fetcher.fetch(backend.unit("shared"))] == [b"value-of-shared"]
    assert backend.calls == [("shared",)]


def test_a_retryable_batch_error_is_still_shared() -> None:
    """Throttling or an outage says nothing about one object: waiters share it (no extra load)."""
    assert fetcher_module._applies_to_all(Unavailable("down"))
    assert fetcher_module._applies_to_all(DeadlineExceeded("late"))
    assert not fetcher_module._applies_to_all(NotFound("missing"))


def test_waiting_for_a_refresh_in_progress_ends_at_the_waiters_deadline() -> None:
    release = threading.Event()
    started = threading.Event()
    clock = [1000.0]

    def fetch(_timeout: float) -> Issued:
        started.set()
        assert release.wait(WAIT)
        return Issued("id", "secret", expiration=clock[0] + 3600)

    provider = RefreshingProvider("test", fetch, clock=lambda: clock[0])
    first = threading.Thread(target=provider.ensure_fresh, args=(Deadline.after(WAIT),))
    first.start()
    assert started.wait(WAIT)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            provider.ensure_fresh(Deadline.after(0.2))
        except DeadlineExceeded as exc:
            errors.append(exc)

    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(WAIT / 2)
    stuck = waiter.is_alive()
    release.set()
    first.join(WAIT)
    waiter.join(WAIT)
    assert not stuck, "the waiter was held past its deadline by another caller's refresh"
    assert len(errors) == 1 and "test credential" in str(errors[0])

    # a credential due for refresh but still valid is handed out instead of waiting
    clock[0] += 3600 - 600  # inside the refresh margin, 10 minutes of validity left
    release.clear()
    started.clear()
    refresher = threading.Thread(target=provider.ensure_fresh, args=(Deadline.after(WAIT),))
    refresher.start()
    assert started.wait(WAIT)
    got = provider.ensure_fresh(Deadline.after(0.2))
    release.set()
    refresher.join(WAIT)
    assert got.access_key_id == "id"


def test_waiting_for_an_identity_build_ends_at_the_waiters_deadline() -> None:
    cache = IdentityCache()
    release, started = threading.Event(), threading.Event()
    identity = Identity(IdentityKey(mode="test"), credential=None)

    def build() -> Identity:
        started.set()
        assert release.wait(WAIT)
        return identity

    builder = threading.Thread(target=cache.get_or_create, args=("k", build))
    builder.start()
    assert started.wait(WAIT)
    with pytest.raises(DeadlineExceeded):
        cache.get_or_create("k", build, Deadline.after(0.2))
    release.set()
    builder.join(WAIT)
    assert cache.get_or_create("k", build, Deadline.after(1)) is identity


class _SlowApi(BaseHTTPRequestHandler):
    release = threading.Event()
    requests = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        type(self).requests += 1
        self.release.wait(WAIT)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_api() -> Iterator[str]:
    _SlowApi.release = threading.Event()
    _SlowApi.requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _SlowApi.release.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def test_waiting_for_a_serviceaccount_lookup_ends_at_the_waiters_deadline(slow_api: str) -> None:
    client = KubeClient(slow_api, token_file=None, ca_file=None)
    first = threading.Thread(
        target=lambda: pytest.raises(Unavailable, kube.role_arn, client, "ns", "sa",
                                     Deadline.after(WAIT)))
    first.start()
    for _ in range(500):
        if _SlowApi.requests:
            break
        threading.Event().wait(0.01)
    outcome: list[BaseException] = []

    def second() -> None:
        try:
            kube.role_arn(client, "ns", "sa", Deadline.after(0.2))
        except BaseException as exc:  # collected for the assertion
            outcome.append(exc)

    waiter = threading.Thread(target=second)
    waiter.start()
    # well before the leader's own 5 s request timeout (MAX_TIMEOUT) would free the lock
    waiter.join(MAX_TIMEOUT / 2)
    stuck = waiter.is_alive()
    _SlowApi.release.set()
    first.join(WAIT)
    waiter.join(WAIT)
    assert not stuck, "the waiter was held past its deadline by another lookup"
    assert isinstance(outcome[0], DeadlineExceeded) and "ns/sa" in str(outcome[0])


def test_endpoint_guards_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetcher_module, "MAX_ENDPOINT_GUARDS", 3)
    settings = ProviderSettings()
    backend = GatedBatchBackend(settings)
    fetcher = Fetcher(settings, metrics=ProviderMetrics(process_collectors=False))
    identity = Identity(IdentityKey(mode="test"), credential=None, provider_level=False)
    for n in range(10):
        endpoint = Endpoint(service="gated", host=f"h{n}.example", address=f"h{n}.example")
        ctx = FetchContext(identity, Deadline.after(1), endpoint, settings)
        fetcher._guard(FetchUnit(backend, (spec(0, "x"),), ctx))
    assert list(fetcher._guards) == [("gated", f"h{n}.example") for n in (7, 8, 9)]


def test_the_outage_refusal_does_not_quote_another_mounts_error() -> None:
    budget = RetryBudget.from_policy(RetryPolicy(budget_tokens=0.0))
    gate = OutageGate(budget)
    gate.record_failure(Unavailable("object #1 (kms 'team-a/db-password') at endpoint x: 503"))
    refusal = gate.refusal("object #1 (kms 'team-b/api-key')", "kms-vpc.cn-hangzhou.aliyuncs.com")
    assert "team-a" not in refusal.message
    assert "team-b/api-key" in refusal.message and "Unavailable" in refusal.message


def test_a_caller_already_gone_does_not_use_up_the_outage_gates_probe() -> None:
    """While an endpoint is down its gate lets one probe through per PROBE_INTERVAL: a fetch
    whose caller already gave up must not take it, or a live caller is refused for one more
    interval."""
    settings = ProviderSettings(cache_ttl=0.0, retry=RetryPolicy(
        max_attempts=2, base_delay=0.01, max_delay=0.02, budget_tokens=0))
    backend = GatedBatchBackend(settings)

    def down(specs: Sequence[ObjectSpec], ctx: FetchContext) -> list[SecretValue]:
        backend.calls.append(tuple(s.object_name for s in specs))
        raise Unavailable(f"object #1 {specs[0].object_name!r}: the service is unavailable")

    backend.fetch_batch = down  # type: ignore[method-assign]
    fetcher = Fetcher(settings, metrics=ProviderMetrics(process_collectors=False))
    with pytest.raises(Unavailable):
        fetcher.fetch(backend.unit("x"))  # the retry budget is empty: the gate closes
    time.sleep(PROBE_INTERVAL)  # the next probe is due
    gone = threading.Event()
    gone.set()
    with pytest.raises(DeadlineExceeded, match="the call was cancelled"):
        fetcher.fetch(backend.unit("x", cancelled=gone))
    calls = len(backend.calls)
    with pytest.raises(Unavailable) as probed:
        fetcher.fetch(backend.unit("x"))
    assert "not called" not in probed.value.message  # it was the probe, not refused
    assert len(backend.calls) == calls + 1


def test_a_shared_failure_reaches_a_waiter_worded_for_its_own_object() -> None:
    """A multi-object call fails for all its objects (an outage): a waiter of one of them (another
    pod's mount, maybe in another namespace, with the same provider-level identity) gets the same
    class and retry hint without the leader's object names, as with the outage gate's refusal."""
    settings = ProviderSettings(cache_ttl=60.0, retry=RetryPolicy(max_attempts=1))
    backend, fetcher = GatedBatchBackend(settings), Fetcher(
        settings, metrics=ProviderMetrics(process_collectors=False))
    original = backend.fetch_batch

    def down(specs: Sequence[ObjectSpec], ctx: FetchContext) -> list[SecretValue]:
        original(specs, ctx)
        raise Unavailable("objects (gated 'team-a-db', 'shared'): the service is unavailable",
                          retry_after=2.0)

    backend.fetch_batch = down  # type: ignore[method-assign]
    outcomes = lead_and_wait(fetcher, backend, backend.unit("team-a-db", "shared"),
                             backend.unit("shared"))
    assert "team-a-db" in outcomes["leader"].message  # the leader's own objects
    waiter = outcomes["waiter"]
    assert isinstance(waiter, Unavailable) and waiter.retryable and waiter.retry_after == 2.0
    assert "team-a-db" not in waiter.message
    assert waiter.message.startswith("object #1 (gated 'shared'): the call it was fetched in")
