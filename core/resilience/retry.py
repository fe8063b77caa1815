"""The shared retry policy: jittered exponential backoff inside the deadline, with a retry budget.

Backends make exactly one upstream attempt per call; this module decides whether and when to try
again. Only errors marked `retryable` (throttling, 5xx, network failures) are retried; everything
else (not found, permission denied, bad credentials, invalid arguments) fails at once.

- Backoff is "full jitter": the n-th retry sleeps a uniform random time in
  [0, min(max_delay, base_delay * 2**(n-1))], so synchronized clients spread out after an outage.
  A server's `x-acs-retry-after` (`ProviderError.retry_after`, seconds) is a lower bound.
- No sleep ever ends past the deadline: when the next retry could not start in time, the last
  retryable error is raised (ABORTED, see errors.Unavailable), naming the object and the number
  of attempts.
- A `RetryBudget` (token bucket, one per endpoint) caps retries during an outage: each retry spends
  a token, each success refunds a fraction of one. A considered refusal (not found, denied,
  rejected: `ProviderError.proves_endpoint_alive`) refunds like a success: the endpoint is up, and
  a tenant mounting a missing secret in a loop must not drain the budget every tenant shares.
  With the bucket empty, calls fail fast instead of multiplying the load on a service that is
  already struggling.
- An `OutageGate` (one per endpoint, next to its budget) bounds first attempts too: once a call
  failed with the budget empty, the endpoint is considered down and only one probe call per
  `PROBE_INTERVAL` goes out; every other fetch fails at once (ABORTED) until a call succeeds
  or the endpoint gives a considered answer (which proves it is up). Throttling is one: it is
  about the caller's quota (KMS throttles per account), so a tenant over its quota spends the
  budget with its retries but never makes the endpoint look down for the other tenants.
  So the calls made during an outage are bounded by the budget plus one probe per interval,
  whatever the mount rate.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ack_secrets_provider.core.errors import DeadlineExceeded, ProviderError, Unavailable
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import RetryPolicy

T = TypeVar("T")

#: seconds between two probe calls to an endpoint the outage gate considers down
PROBE_INTERVAL = 1.0

__all__ = ["OutageGate", "RetryBudget", "backoff_delay", "call_with_retries"]


class RetryBudget:
    """A thread-safe token bucket of retries, shared by every call to one endpoint."""

    def __init__(self, capacity: float, refund: float) -> None:
        self.capacity = float(capacity)
        self.refund = float(refund)
        self._tokens = float(capacity)
        self._lock = threading.Lock()

    @classmethod
    def from_policy(cls, policy: RetryPolicy) -> RetryBudget:
        return cls(policy.budget_tokens, policy.budget_refund)

    @property
    def tokens(self) -> float:
        with self._lock:
            return self._tokens

    def try_spend(self) -> bool:
        """Take one token for a retry; False when the budget is exhausted."""
        with self._lock:
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def record_success(self) -> None:
        """A call succeeded: give back a fraction of a token (never above capacity)."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + self.refund)


class OutageGate:
    """Admits first attempts to one endpoint; after a failure with the budget empty, probes only.

    Thread-safe. `clock`: monotonic seconds (the fetcher's clock).
    """

    def __init__(self, budget: RetryBudget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._lock = threading.Lock()
        self._down = False
        self._next_probe = 0.0
        self._last_error = ""

    def admit(self) -> bool:
        """True if a first attempt may be made now (always, unless the endpoint is down)."""
        with self._lock:
            if not self._down:
                return True
            now = self._clock()
            if now >= self._next_probe:
                self._next_probe = now + PROBE_INTERVAL
                return True
            return False

    def refusal(self, what: str, endpoint: str) -> Unavailable:
        """The error of a fetch `admit()` refused."""
        with self._lock:
            wait = max(0.0, self._next_probe - self._clock())
            last = self._last_error
        return Unavailable(
            f"{what}: not called: endpoint {endpoint} kept failing and its retry budget is "
            f"exhausted, so the provider only sends one probe call every "
            f"{PROBE_INTERVAL:g}s until it answers again (next in {wait:.1f}s); "
            f"last error: {last}",
            retry_after=wait or None,
        )

    def record_failure(self, error: ProviderError) -> None:
        """A fetch failed with a retryable error: with the budget empty the endpoint is down."""
        with self._lock:
            # The class only: the message names another mount's object (and pod namespace's
            # secret names must not reach a different pod's error or Events); logs have it.
            self._last_error = f"{error.reason} ({error.code.name})"
            if self.budget.tokens < 1.0 and not self._down:
                self._down = True
                self._next_probe = self._clock() + PROBE_INTERVAL

    def record_success(self) -> None:
        with self._lock:
            self._down = False


def backoff_delay(
    retry: int, policy: RetryPolicy, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number `retry` (1-based), full jitter."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** max(0, retry - 1)))
    return max(0.0, rng() * ceiling)


def _with_context(exc: ProviderError, note: str) -> ProviderError:
    """The same error class and retry hint with `note` appended to the message."""
    again = type(exc)(f"{exc.message}; {note}", retry_after=exc.retry_after)
    return again


def call_with_retries(
    fn: Callable[[], T],
    *,
    deadline: Deadline,
    policy: RetryPolicy,
    budget: RetryBudget | None,
    what: str,
    sleep: Callable[[float], None] | None = None,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call `fn` until it succeeds, a non-retryable error occurs, or retrying must stop.

    `what` names the object(s) in messages. Raises DeadlineExceeded if the deadline has already
    passed (or the caller gave up) before the first attempt; the last retryable error (annotated
    with the number of attempts and why retrying stopped) when attempts, the deadline or the
    budget run out, so a deadline that expires during retries is reported as the upstream error
    with its cause. The pause between attempts (`sleep`, by default the deadline's `pause`) ends
    early when the caller gives up.
    """
    pause = deadline.pause if sleep is None else sleep
    attempts = 0
    last: ProviderError | None = None
    while True:
        if deadline.caller_gone:
            # Nobody waits for this answer. A DeadlineExceeded, not the upstream's error: a
            # single-flight waiter with time left fetches for itself instead of inheriting it.
            raise DeadlineExceeded(
                f"{what}: {deadline.why()}; "
                + (f"not retried after {attempts} attempt(s) (the last: {last.message})"
                   if last is not None else "the upstream call was not made")
            )
        if deadline.expired():
            if last is not None:
                raise _with_context(
                    last, f"gave up after {attempts} attempt(s): the mount deadline passed"
                ) from None
            raise DeadlineExceeded(
                f"{what}: the mount deadline passed before the upstream call could be made; "
                "the service may be slow or throttling, or raise the caller's timeout"
            )
        attempts += 1
        try:
            result = fn()
        except ProviderError as exc:
            if not exc.retryable:
                if budget is not None and exc.proves_endpoint_alive:
                    budget.record_success()  # the endpoint answered: not a sign of an outage
                raise
            last = exc
            if deadline.caller_gone:
                continue  # not retried: the top of the loop says why
            if attempts >= policy.max_attempts:
                raise _with_context(
                    exc, f"gave up after {attempts} attempts (retry limit)"
                ) from None
            delay = backoff_delay(attempts, policy, rng)
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            remaining = deadline.remaining()
            if delay >= remaining:
                raise _with_context(
                    exc,
                    f"gave up after {attempts} attempt(s): the next retry (in {delay:.2f}s) would "
                    f"not fit in the {remaining:.2f}s left before the mount deadline",
                ) from None
            if budget is not None and not budget.try_spend():
                # the last error's class: a throttled call stays Throttled (the caller's quota,
                # RESOURCE_EXHAUSTED), an outage stays Unavailable
                raise _with_context(
                    exc, f"not retried after {attempts} attempt(s) because the retry budget of "
                    "this endpoint is exhausted (too many recent failures at this endpoint)",
                ) from None
            pause(delay)
        else:
            if budget is not None:
                budget.record_success()
            return result
