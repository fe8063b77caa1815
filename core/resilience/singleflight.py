"""Single-flight: concurrent requests for the same key share one upstream call.

When a hundred pods of one ServiceAccount are republished together and their cache entry has just
expired, one of them (the leader) calls upstream and the others wait for its answer instead of
making ninety-nine identical calls.

- Each waiter waits within its OWN deadline: when it runs out, that waiter gets DeadlineExceeded
  and the leader carries on (its result still fills the cache for the next mount).
- An error of the leader is handed to the callers waiting at that moment (they asked at the same
  time and would most likely get the same answer) but is never remembered: the next request after
  the flight makes a fresh call. The one exception is a DeadlineExceeded of the leader, which says
  only that the leader's caller ran out of time or gave up (cancelled its Mount): a waiter with
  time left tries again itself (the fetcher does that, core/resilience/fetcher.py).
- The leader runs the call in its own thread (no extra threads are created here).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

from ack_secrets_provider.core.errors import DeadlineExceeded
from ack_secrets_provider.core.resilience.deadline import Deadline

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

__all__ = ["Flight", "SingleFlight"]


class Flight(Generic[V]):
    """One upstream call in progress; waiters block on it until it resolves."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: V | None = None
        self._error: BaseException | None = None

    def resolve(self, value: V) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, deadline: Deadline, what: str) -> V:
        """The leader's value; its error re-raised; DeadlineExceeded if `deadline` passes first."""
        if not self._done.wait(timeout=deadline.remaining()):
            raise DeadlineExceeded(
                f"{what}: the mount deadline passed while waiting for an identical upstream "
                "call already in flight; the upstream service may be slow or throttling (check "
                "the provider's metrics), or raise the caller's timeout"
            )
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class SingleFlight(Generic[K, V]):
    """A map of flights in progress. Thread-safe."""

    def __init__(self) -> None:
        self._flights: dict[K, Flight[V]] = {}
        self._lock = threading.Lock()

    def begin(self, key: K) -> tuple[Flight[V], bool]:
        """The flight for `key` and whether the caller leads it (must then `finish` it)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = Flight()
            self._flights[key] = flight
            return flight, True

    def finish(self, key: K, flight: Flight[V], *, value: V | None = None,
               error: BaseException | None = None) -> None:
        """End a flight the caller leads: forget it, then wake its waiters."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        if error is not None:
            flight.fail(error)
        else:
            flight.resolve(value)  # type: ignore[arg-type]
