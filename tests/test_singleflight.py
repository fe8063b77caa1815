"""Single-flight: one leader per key, waiters bounded by their own deadlines, errors shared with
current waiters but never remembered. (How the fetcher uses it, including a waiter fetching for
itself when only the leader's caller ran out of time: tests/test_shared_work_and_waits.py.)"""

from __future__ import annotations

import threading

import pytest

from ack_secrets_provider.core.errors import DeadlineExceeded, Unavailable
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.singleflight import SingleFlight


def test_the_first_caller_leads_and_the_others_join() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    flight, leader = flights.begin("k")
    joined = [flights.begin("k") for _ in range(9)]
    assert leader and not any(lead for _, lead in joined)
    assert all(other is flight for other, _ in joined)
    other, other_leads = flights.begin("another key")
    assert other_leads and other is not flight


def test_waiters_get_the_leaders_value_across_threads() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    flight, _ = flights.begin("k")
    joined = threading.Barrier(6)  # five waiters and this thread: every waiter has joined
    results: list[str] = []

    def wait() -> None:
        waiting, leads = flights.begin("k")
        joined.wait(10)
        assert not leads
        results.append(waiting.wait(Deadline.after(10), "object #1"))

    waiters = [threading.Thread(target=wait) for _ in range(5)]
    for thread in waiters:
        thread.start()
    joined.wait(10)
    flights.finish("k", flight, value="value")
    for thread in waiters:
        thread.join(10)
    assert results == ["value"] * 5
    fresh, leader = flights.begin("k")  # a finished flight is forgotten: the next caller leads
    assert leader and fresh is not flight


def test_errors_reach_current_waiters_and_are_not_remembered() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    flight, _ = flights.begin("k")
    waiting, _ = flights.begin("k")
    flights.finish("k", flight, error=Unavailable("object #1: down"))
    with pytest.raises(Unavailable):
        waiting.wait(Deadline.after(10), "object #1")
    fresh, leader = flights.begin("k")  # the next caller calls again
    assert leader and fresh is not flight


def test_a_waiter_times_out_alone_and_the_leader_finishes() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    flight, _ = flights.begin("k")
    waiting, _ = flights.begin("k")
    with pytest.raises(DeadlineExceeded, match="object #1.*in flight"):
        waiting.wait(Deadline.after(0.05), "object #1")
    assert not flight.done  # the leader is not cancelled: later callers still join it
    assert flights.begin("k") == (flight, False)
    flights.finish("k", flight, value="value")
    assert waiting.wait(Deadline.after(10), "object #1") == "value"


def test_finishing_a_replaced_flight_does_not_forget_the_new_one() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    old, _ = flights.begin("k")
    flights.finish("k", old, value="old")
    new, leader = flights.begin("k")
    flights.finish("k", old, value="late")  # a stale finish
    assert leader and not new.done
    assert flights.begin("k") == (new, False)  # the new flight is still joined
