"""The shared retry policy: what is retried, how long it waits, and when it stops."""

from __future__ import annotations

import random
import threading
import time

import pytest

from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    NotFound,
    ProviderError,
    Throttled,
    Unavailable,
)
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.retry import RetryBudget, backoff_delay, call_with_retries
from ack_secrets_provider.core.settings import RetryPolicy

POLICY = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=5.0, budget_tokens=20,
                     budget_refund=0.2)


class Script:
    """A callable that raises the given errors in order, then returns 'ok'."""

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(fn: Script, *, deadline: float = 60.0, policy: RetryPolicy = POLICY,
        budget: RetryBudget | None = None, rng: float = 1.0) -> tuple[str, list[float]]:
    sleeps: list[float] = []
    result = call_with_retries(
        fn, deadline=Deadline.after(deadline), policy=policy, budget=budget, what="object #1",
        sleep=sleeps.append, rng=lambda: rng,
    )
    return result, sleeps


def test_retries_retryable_errors_with_exponential_full_jitter() -> None:
    fn = Script(Unavailable("down"), Throttled("slow"), Unavailable("down"))
    result, sleeps = run(fn, rng=1.0)
    assert result == "ok" and fn.calls == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])
    _, jittered = run(Script(Unavailable("x"), Unavailable("y")), rng=0.5)
    assert jittered == pytest.approx([0.05, 0.1])


def test_backoff_is_capped_by_max_delay() -> None:
    assert backoff_delay(30, POLICY, lambda: 1.0) == POLICY.max_delay
    assert backoff_delay(1, POLICY, lambda: 0.0) == 0.0


def test_non_retryable_errors_are_raised_at_once() -> None:
    fn = Script(NotFound("object #1: not found"))
    with pytest.raises(NotFound):
        run(fn)
    assert fn.calls == 1


def test_retry_after_is_a_lower_bound() -> None:
    _, sleeps = run(Script(Throttled("slow", retry_after=1.5)), rng=0.0)
    assert sleeps == [1.5]


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    fn = Script(*[Unavailable(f"down {i}") for i in range(10)])
    with pytest.raises(Unavailable) as info:
        run(fn, policy=RetryPolicy(max_attempts=3))
    assert fn.calls == 3
    assert "down 2" in info.value.message and "after 3 attempts" in info.value.message


def test_never_sleeps_past_the_deadline() -> None:
    fn = Script(Throttled("slow", retry_after=5.0), Unavailable("down"))
    sleeps: list[float] = []
    with pytest.raises(Throttled) as info:
        call_with_retries(fn, deadline=Deadline.after(1.0), policy=POLICY, budget=None,
                          what="object #1", sleep=sleeps.append, rng=lambda: 1.0)
    assert fn.calls == 1
    assert sleeps == [], "a 5 s Retry-After must not be slept within a 1 s deadline"
    assert "deadline" in info.value.message
    assert info.value.retry_after == 5.0


def test_expired_deadline_raises_deadline_exceeded_naming_the_object() -> None:
    fn = Script()
    with pytest.raises(DeadlineExceeded, match="object #1"):
        call_with_retries(fn, deadline=Deadline(time.monotonic() - 1), policy=POLICY,
                          budget=None, what="object #1", sleep=lambda s: None)
    assert fn.calls == 0


def test_real_sleep_respects_deadline() -> None:
    """With the real clock: retries happen, then stop before the deadline passes."""
    fn = Script(*[Unavailable("down") for _ in range(100)])
    policy = RetryPolicy(max_attempts=100, base_delay=0.05, max_delay=0.05)
    deadline = Deadline.after(0.5)
    #: (requested delay, time left on the deadline when the sleep began)
    slept: list[tuple[float, float]] = []

    def real_sleep(seconds: float) -> None:
        slept.append((seconds, deadline.remaining()))
        time.sleep(seconds)

    with pytest.raises(Unavailable, match="deadline"):
        call_with_retries(fn, deadline=deadline, policy=policy, budget=None, what="object #1",
                          sleep=real_sleep)
    assert 2 <= fn.calls < 100
    # one real sleep between attempts; on a loaded machine the last sleep may overrun the
    # deadline, and then no attempt follows it
    assert len(slept) in (fn.calls - 1, fn.calls)
    assert all(0 < delay < left for delay, left in slept), slept  # no sleep outlives the deadline


def test_budget_empty_fails_fast() -> None:
    budget = RetryBudget(capacity=2, refund=0.5)
    fn = Script(*[Unavailable("down") for _ in range(10)])
    with pytest.raises(Unavailable, match="retry budget"):
        run(fn, budget=budget)
    assert fn.calls == 3 and budget.tokens == 0
    fn2 = Script(Unavailable("down"))
    with pytest.raises(Unavailable, match="retry budget"):
        run(fn2, budget=budget)
    assert fn2.calls == 1


def test_budget_refunds_on_success_up_to_capacity() -> None:
    budget = RetryBudget(capacity=2, refund=0.5)
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()
    run(Script(), budget=budget)
    run(Script(), budget=budget)
    assert budget.tokens == pytest.approx(1.0)
    for _ in range(10):
        budget.record_success()
    assert budget.tokens == 2.0
    assert RetryBudget.from_policy(POLICY).tokens == POLICY.budget_tokens


def test_the_default_budget_sustains_25_percent_throttling_and_stops_an_outage() -> None:
    """docs/rotation-and-caching.md: with 25% of calls throttled retries keep flowing (they need
    ~0.33 tokens per success, a success refunds 0.5); during an outage only the 20 tokens are
    spent. (At 30% the margin is thin and the budget runs dry now and then, as the page says.)"""
    policy = RetryPolicy()
    budget = RetryBudget.from_policy(policy)
    draw = random.Random(7).random

    def throttled_25_percent() -> str:
        if draw() < 0.25:
            raise Throttled("slow")
        return "ok"

    for _ in range(6000):  # ten minutes at the default 10 calls per second
        assert call_with_retries(throttled_25_percent, deadline=Deadline.after(60),
                                 policy=policy, budget=budget, what="object #1",
                                 sleep=lambda _: None) == "ok"
    down, full = Script(*[Unavailable("down")] * 1000), RetryBudget.from_policy(policy)
    for _ in range(50):
        with pytest.raises(Unavailable):
            call_with_retries(down, deadline=Deadline.after(60), policy=policy, budget=full,
                              what="object #1", sleep=lambda _: None)
    assert down.calls == 50 + 20  # each first attempt, and one retry per token


def test_deadline_passing_after_a_failure_reports_the_upstream_error() -> None:
    """A deadline that expires during retries surfaces the upstream error, not a bare timeout."""
    now = [0.0]
    deadline = Deadline.after(60)

    def fail() -> str:
        now[0] += 1
        # the attempt itself eats the rest of the deadline (no real waiting needed)
        object.__setattr__(deadline, "expires_at", time.monotonic() - 1)
        raise Unavailable("object #1: 503 from KMS")

    with pytest.raises(Unavailable, match="503 from KMS") as info:
        call_with_retries(fail, deadline=deadline, policy=POLICY, budget=None, what="object #1",
                          sleep=lambda s: None, rng=lambda: 0.0)
    assert now[0] == 1 and "deadline" in info.value.message


def test_a_caller_who_gives_up_ends_the_pause_and_the_retries() -> None:
    """deadline.py: the caller cancels the Mount during the pause between two attempts: the
    pause ends at once, no further attempt is made, and the error is a DeadlineExceeded saying
    why (not the upstream's error, which a single-flight waiter with time left would inherit)."""
    cancelled = threading.Event()
    deadline = Deadline.after(60, cancelled)
    fn = Script(Unavailable("down"), Unavailable("down"), Unavailable("down"))

    def attempt() -> str:  # the caller gives up 0.2 s after the first attempt, in its pause
        try:
            return fn()
        finally:
            if fn.calls == 1:
                threading.Timer(0.2, cancelled.set).start()

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        call_with_retries(attempt, deadline=deadline,
                          policy=RetryPolicy(base_delay=30, max_delay=30),
                          budget=None, what="object #1", rng=lambda: 1.0)
    assert time.monotonic() - started < 10  # not the 30 s pause
    assert fn.calls == 1
    assert caught.value.message == (
        "object #1: the call was cancelled (the driver gave up on it, or the provider is "
        "stopping); not retried after 1 attempt(s) (the last: down)")
    # already gone before the first attempt: no attempt at all
    with pytest.raises(DeadlineExceeded, match="the upstream call was not made"):
        call_with_retries(Script(), deadline=deadline, policy=POLICY, budget=None,
                          what="object #1")


def test_a_deadline_whose_caller_gave_up_has_no_time_left() -> None:
    cancelled = threading.Event()
    deadline = Deadline.after(60, cancelled)
    derived = deadline.min(30)  # the same caller: a bound taken from it sees the cancel too
    assert deadline.remaining() > 50 and not deadline.expired() and not derived.expired()
    cancelled.set()
    for each in (deadline, derived):
        assert each.remaining() == 0.0 and each.expired() and each.caller_gone
    with pytest.raises(DeadlineExceeded, match="the call was cancelled"):
        deadline.check("object #1")
    started = time.monotonic()
    deadline.pause(30)  # returns at once
    assert time.monotonic() - started < 5
    # gRPC also ends a call at its own deadline, just after ours: that is the deadline passing
    ended = threading.Event()
    ended.set()
    passed = Deadline(time.monotonic() - 1, ended)
    assert passed.expired() and not passed.caller_gone
    assert passed.why() == "the mount deadline passed"
