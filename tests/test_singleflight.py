"""Single-flight: one call for concurrent callers, own deadlines, shared but uncached errors."""

from __future__ import annotations

import threading
import time

import pytest

from ack_secrets_provider.core.errors import DeadlineExceeded, Unavailable
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.singleflight import SingleFlight


class SlowCall:
    """Counts calls; each blocks until `release` is set."""

    def __init__(self, result: str = "value", error: Exception | None = None) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.result = result
        self.error = error

    def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        return self.result


def run_all(flights: SingleFlight[str, str], fn: SlowCall, n: int,
            timeout: float = 10.0) -> tuple[list[str], list[BaseException], list[threading.Thread]]:
    results: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(flights.do("k", fn, Deadline.after(timeout), "object #1"))
        except BaseException as exc:  # collected for the assertions
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    return results, errors, threads


def wait_for_waiters(flights: SingleFlight[str, str], n: int) -> None:
    flight, leader = flights.begin("probe")  # a different key: does not disturb "k"
    flights.finish("probe", flight, value="x")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        current = flights._flights.get("k")
        if current is not None and current.waiters >= n:
            return
        time.sleep(0.005)
    raise AssertionError("waiters did not join")


def test_concurrent_callers_share_one_call() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    fn = SlowCall()
    results, errors, threads = run_all(flights, fn, 10)
    assert fn.started.wait(5)
    wait_for_waiters(flights, 9)
    fn.release.set()
    for thread in threads:
        thread.join(5)
    assert fn.calls == 1 and results == ["value"] * 10 and not errors
    assert flights.in_flight() == 0


def test_errors_reach_current_waiters_and_are_not_remembered() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    fn = SlowCall(error=Unavailable("object #1: down"))
    results, errors, threads = run_all(flights, fn, 4)
    assert fn.started.wait(5)
    wait_for_waiters(flights, 3)
    fn.release.set()
    for thread in threads:
        thread.join(5)
    assert fn.calls == 1 and not results
    assert [type(e) for e in errors] == [Unavailable] * 4
    ok = SlowCall()
    ok.release.set()
    assert flights.do("k", ok, Deadline.after(5), "object #1") == "value" and ok.calls == 1


def test_a_waiter_times_out_alone_and_the_leader_finishes() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    fn = SlowCall()
    results, errors, threads = run_all(flights, fn, 1)
    assert fn.started.wait(5)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="object #1.*in flight"):
        flights.do("k", fn, Deadline.after(0.1), "object #1")
    assert time.monotonic() - start < 1.0
    fn.release.set()
    threads[0].join(5)
    assert results == ["value"] and fn.calls == 1


def test_a_waiter_retries_when_only_the_leader_ran_out_of_time() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    leader = SlowCall(error=DeadlineExceeded("object #1: the leader's deadline"))
    results, errors, threads = run_all(flights, leader, 1)
    assert leader.started.wait(5)
    waiter_result: list[str] = []
    second = SlowCall("fresh")
    second.release.set()
    waiter = threading.Thread(target=lambda: waiter_result.append(
        flights.do("k", second, Deadline.after(5), "object #1")))
    waiter.start()
    wait_for_waiters(flights, 1)
    leader.release.set()
    waiter.join(5)
    threads[0].join(5)
    assert [type(e) for e in errors] == [DeadlineExceeded]
    assert waiter_result == ["fresh"] and second.calls == 1
