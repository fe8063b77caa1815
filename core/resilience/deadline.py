"""A monotonic deadline shared by everything one Mount does."""

from __future__ import annotations

import time
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
