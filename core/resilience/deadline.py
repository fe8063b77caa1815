"""A monotonic deadline shared by everything one Mount does.

`within(deadline)` makes it the current deadline of the calling thread for a block, so code the
provider does not call directly (the SDK asking a credential provider for a refresh in the middle
of a call) can still stop when the mount's caller gives up: `current()` returns it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ack_secrets_provider.core.errors import DeadlineExceeded


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock by which work must be finished."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at

    def check(self, what: str) -> None:
        """Raise DeadlineExceeded naming `what` when no time is left."""
        if self.expired():
            raise DeadlineExceeded(
                f"{what}: the mount deadline passed before it could finish; the upstream service "
                "may be slow or throttling (check the provider's logs and metrics), or raise the "
                "caller's timeout"
            )

    def min(self, seconds: float) -> Deadline:
        """This deadline, or `seconds` from now if that comes sooner."""
        return Deadline(min(self.expires_at, time.monotonic() + seconds))


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
