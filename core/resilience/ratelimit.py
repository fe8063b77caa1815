"""Backend protection: a per-service call rate and a per-endpoint concurrency bound.

- `RateLimiter` is a token bucket of upstream calls per second (`--max-concurrent-kms-secret-pulls`
  and `--max-concurrent-oos-secret-pulls`: despite their names these were always a per-second
  rate in the existing provider, and are here too). A caller reserves the next free slot and
  sleeps until it; when that slot lies beyond the caller's deadline it fails at once with
  DeadlineExceeded and reserves nothing, so a queue behind the limit never outlives the callers
  (the existing provider could keep a mount waiting for minutes after kubelet gave up).
- `ConcurrencyLimit` bounds the upstream calls in flight to one endpoint
  (`settings.endpoint_concurrency`); waiting for a slot is bounded by the deadline the same way.

Both count upstream attempts (retries included), never cache hits. A rate or limit of 0 means
unlimited.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator

from ack_secrets_provider.core.errors import DeadlineExceeded
from ack_secrets_provider.core.resilience.deadline import Deadline

__all__ = ["ConcurrencyLimit", "RateLimiter"]


class RateLimiter:
    """Token bucket: `rate` calls per second on average, bursts of up to `burst` calls (the rate
    rounded up, at least 1: one second's worth).

    The bucket starts full. `clock`/`sleep` are injectable so tests need no real waiting.
    """

    def __init__(
        self,
        rate: float,
        *,
        name: str = "upstream calls",
        flag: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = max(0.0, float(rate))
        self.burst = float(max(1, math.ceil(self.rate)))
        self.name = name
        self.flag = flag
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def reserve(self, max_wait: float) -> float | None:
        """Take a token now or in the future; seconds to wait, or None if over `max_wait`."""
        if self.unlimited:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
            if wait > max_wait:
                return None
            self._tokens -= 1.0  # may go negative: later callers queue behind this reservation
            return wait

    def acquire(self, deadline: Deadline, what: str) -> float:
        """Wait for a call slot within `deadline`; seconds waited. DeadlineExceeded if too far."""
        wait = self.reserve(deadline.remaining())
        if wait is None:
            limit = f"{self.rate:g}/s"
            setting = f" ({self.flag} {self.rate:g})" if self.flag else ""
            raise DeadlineExceeded(
                f"{what}: not called: the provider's own limit of {limit} {self.name}{setting} "
                "is queued further than the caller's deadline; too many objects are being "
                "fetched at once on this node; raise the limit or spread the mounts"
            )
        if wait > 0:
            self._sleep(wait)
        return wait


class ConcurrencyLimit:
    """At most `limit` calls at once (0 = unlimited), waiting within the caller's deadline."""

    def __init__(self, limit: int, *, name: str = "endpoint") -> None:
        self.limit = max(0, int(limit))
        self.name = name
        self._semaphore = threading.BoundedSemaphore(self.limit) if self.limit else None

    @contextlib.contextmanager
    def slot(self, deadline: Deadline, what: str) -> Iterator[None]:
        if self._semaphore is None:
            yield
            return
        if not self._semaphore.acquire(timeout=deadline.remaining()):
            raise DeadlineExceeded(
                f"{what}: not called: {self.limit} calls to {self.name} were already in "
                "flight until the caller's deadline (the provider's per-endpoint bound, "
                "settings.endpoint_concurrency); the upstream service is slow or the node "
                "fetches too many objects at once"
            )
        try:
            yield
        finally:
            self._semaphore.release()
