"""A monotonic deadline shared by everything one Mount does.

The caller can also give up before the deadline: the driver cancels the call (its own caller's
context ended, the driver restarted), or the provider stops and cancels what is left. The gRPC
server then sets the deadline's `cancelled` event and from that moment no time is left: retries
stop (their pause ends at once), no further upstream call is made for the mount, and a wait that
starts afterwards has nothing left. A wait already in progress (for another mount's identical
call, a rate-limit slot, a lock) and a call already on the wire end at the bound they started
with. A single-flight waiter whose leader's caller gave up fetches for itself
(core/resilience/singleflight.py), as when the leader's deadline passes.

`within(deadline)` makes it the current deadline of the calling thread for a block, so code the
provider does not call directly (the SDK asking a credential provider for a refresh in the middle
of a call) can still stop when the mount's caller gives up: `current()` returns it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from ack_secrets_provider.core.errors import DeadlineExceeded


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock by which work must be finished."""

    expires_at: float
    #: set when the caller gives up before `expires_at` (see the module): no time is left then
    cancelled: threading.Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, cancelled: threading.Event | None = None) -> Deadline:
        return cls(time.monotonic() + seconds, cancelled)

    @property
    def caller_gone(self) -> bool:
        """Whether the caller gave up (cancelled the call) before the deadline. gRPC also ends
        a call whose own deadline passed (ours is a little earlier): that is the deadline."""
        return (self.cancelled is not None and self.cancelled.is_set()
                and time.monotonic() < self.expires_at)

    def remaining(self) -> float:
        """Seconds left, never negative; none once the caller gave up."""
        if self.caller_gone:
            return 0.0
        return max(0.0, self.expires_at - time.monotonic())

    def expired(self) -> bool:
        return self.caller_gone or time.monotonic() >= self.expires_at

    def why(self) -> str:
        """Why no time is left, for messages: "the mount deadline passed" or the caller's
        cancellation."""
        if self.caller_gone:
            return ("the call was cancelled (the driver gave up on it, or the provider is "
                    "stopping)")
        return "the mount deadline passed"

    def check(self, what: str) -> None:
        """Raise DeadlineExceeded naming `what` when no time is left."""
        if self.caller_gone:
            raise DeadlineExceeded(f"{what}: {self.why()} before it could finish")
        if self.expired():
            raise DeadlineExceeded(
                f"{what}: the mount deadline passed before it could finish; the upstream service "
                "may be slow or throttling (check the provider's logs and metrics), or raise the "
                "caller's timeout"
            )

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the caller gives up meanwhile."""
        if self.cancelled is None:
            time.sleep(seconds)
        else:
            self.cancelled.wait(seconds)

    def min(self, seconds: float) -> Deadline:
        """This deadline, or `seconds` from now if that comes sooner (the same caller)."""
        return Deadline(min(self.expires_at, time.monotonic() + seconds), self.cancelled)


_CURRENT: ContextVar[Deadline | None] = ContextVar("ack_current_deadline", default=None)


@contextmanager
def within(deadline: Deadline) -> Iterator[None]:
    """Make `deadline` the calling thread's current deadline for the block."""
    token = _CURRENT.set(deadline)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Deadline | None:
    """The deadline of the mount this thread works for, if a `within` block set one."""
    return _CURRENT.get()
