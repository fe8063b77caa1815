"""Rate limiter and concurrency bound: waiting never outlives the caller's deadline;
the outage gate: after the budget is gone, probes only."""

from __future__ import annotations

import threading

import pytest

from ack_secrets_provider.core.errors import DeadlineExceeded, Unavailable
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.ratelimit import ConcurrencyLimit, RateLimiter
from ack_secrets_provider.core.resilience.retry import OutageGate, RetryBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_then_steady_rate() -> None:
    t = FakeTime()
    limiter = RateLimiter(10, clock=t.clock, sleep=t.sleep)
    assert limiter.burst == 10
    for _ in range(10):
        assert limiter.acquire(Deadline.after(60), "object #1") == 0.0
    waits = [limiter.reserve(60.0) for _ in range(5)]
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_waiting_is_bounded_by_the_deadline_and_reserves_nothing() -> None:
    t = FakeTime()
    limiter = RateLimiter(2, clock=t.clock, sleep=t.sleep, flag="--max-concurrent-kms-secret-pulls")
    limiter.reserve(60.0)
    limiter.reserve(60.0)  # bucket empty: the next slot is 0.5 s away
    with pytest.raises(DeadlineExceeded, match=r"object #1.*--max-concurrent-kms-secret-pulls 2"):
        limiter.acquire(Deadline.after(0.3), "object #1")
    assert t.slept == []
    assert limiter.reserve(0.4) is None  # refused: not within 0.4 s
    assert limiter.reserve(0.5) == pytest.approx(0.5)  # the refusal took no slot


def test_real_time_rate_limit_refuses_at_once_instead_of_queueing() -> None:
    slept: list[float] = []
    limiter = RateLimiter(0.2, sleep=slept.append)  # a burst of 1, the real clock: next in 5 s
    limiter.acquire(Deadline.after(5), "object #1")
    with pytest.raises(DeadlineExceeded, match="object #2"):
        limiter.acquire(Deadline.after(2), "object #2")
    assert slept == []  # it did not sit out the 2 s deadline before refusing
    assert limiter.reserve(5.5) is not None  # the refusal took no slot


def test_zero_rate_is_unlimited() -> None:
    limiter = RateLimiter(0)
    assert limiter.unlimited
    assert all(limiter.reserve(0.0) == 0.0 for _ in range(1000))


def test_concurrency_limit_waits_within_the_deadline() -> None:
    limit = ConcurrencyLimit(2, name="endpoint 127.0.0.1:1")
    entered = threading.Event()
    release = threading.Event()
    inside = []

    def hold() -> None:
        with limit.slot(Deadline.after(5), "object #1"):
            inside.append(1)
            if len(inside) == 2:
                entered.set()
            assert release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert entered.wait(5)
    with (pytest.raises(DeadlineExceeded, match="2 calls to endpoint 127.0.0.1:1"),
          limit.slot(Deadline.after(0.05), "object #3")):
        pass
    # a caller with time left waits for a slot instead of failing: it enters once one frees up
    waiter_inside = threading.Event()

    def wait_for_slot() -> None:
        with limit.slot(Deadline.after(5), "object #4"):
            waiter_inside.set()

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    assert not waiter_inside.wait(0.1)  # both slots are still held: it waits, not enters
    release.set()
    for thread in [*threads, waiter]:
        thread.join(5)
    assert waiter_inside.is_set()


def test_outage_gate_admits_one_probe_per_interval_once_the_budget_is_gone() -> None:
    t = FakeTime()
    budget = RetryBudget(capacity=2, refund=0.5)
    gate = OutageGate(budget, clock=t.clock)  # the clock stands still until the test moves it
    gate.record_failure(Unavailable("object #1: down"))
    assert gate.admit() and gate.admit()  # budget left: failures alone do not close it
    assert budget.try_spend() and budget.try_spend()
    gate.record_failure(Unavailable("object #1: down"))  # the budget is gone: down
    assert [gate.admit() for _ in range(5)] == [False] * 5
    refusal = gate.refusal("object #2", "kms-vpc.cn-hangzhou.aliyuncs.com")
    assert isinstance(refusal, Unavailable) and "probe" in refusal.message
    # the last error's class is named; its message (another mount's objects) is not quoted
    assert "object #2" in refusal.message and "last error: Unavailable" in refusal.message
    assert "object #1" not in refusal.message
    t.now = 0.999
    assert not gate.admit()
    t.now = 1.0  # docs/rotation-and-caching.md: "only one probe call per second goes out"
    assert gate.admit() and not gate.admit()  # one probe per interval
    gate.record_success()
    assert all(gate.admit() for _ in range(5))  # up again: no probe interval
