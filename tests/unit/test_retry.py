"""The retry piece alone, with a fake clock and sleep: backoff, jitter, Retry-After, deadline."""

from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import formatdate

import pytest
import structlog

from relay.errors import TokenApiError
from relay.retry import RETRY_AFTER_MAX_S, Backoff, Retrier, Retryable, retry_after


class FakeTime:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        self.now += seconds


class Script:
    """An attempt that fails with the given Retryables (or other errors) in turn, then returns."""

    def __init__(self, *failures: Exception, result: str = "ok") -> None:
        self.failures = list(failures)
        self.calls = 0
        self.result = result

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def busy(retry_after_s: float | None = None) -> Retryable:
    return Retryable("the server answered 503: busy", "server error 503", retry_after_s)


def retrier(time: FakeTime, base: float = 1.0, cap: float = 8.0, rng: float = 0.5) -> Retrier:
    return Retrier(
        Backoff(base, cap, lambda: rng),
        clock=time,
        sleep=time.sleep,
        give_up=TokenApiError,
        log=structlog.get_logger("test"),
    )


def test_backoff_doubles_up_to_the_cap() -> None:
    """rng = 0.5: three quarters of min(cap, base * 2^(n-1)); a huge attempt number stays capped."""
    backoff = Backoff(1.0, 8.0, lambda: 0.5)
    assert [backoff.delay(n) for n in range(1, 8)] == pytest.approx(
        [0.75, 1.5, 3.0, 6.0, 6.0, 6.0, 6.0]
    )
    assert backoff.delay(10_000) == pytest.approx(6.0)


def test_jitter_stays_in_upper_half() -> None:
    for r, expected in ((0.0, 2.0), (0.999, 3.998)):
        assert Backoff(base_s=1.0, rng=lambda r=r: r).delay(3) == pytest.approx(expected)
    rng = random.Random(7)
    backoff = Backoff(0.5, 30.0, rng.random)
    for attempt in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(50):
            assert ceiling / 2 <= backoff.delay(attempt) <= ceiling


def test_failures_are_retried_with_backoff_until_one_succeeds() -> None:
    time = FakeTime()
    attempt = Script(busy(), busy(), busy())
    assert retrier(time).run(attempt, deadline=time.now + 100) == "ok"
    assert attempt.calls == 4
    assert time.sleeps == pytest.approx([0.75, 1.5, 3.0])


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    time = FakeTime()
    attempt = Script(busy(retry_after_s=7.0), busy(retry_after_s=0.1))
    assert retrier(time).run(attempt, deadline=time.now + 100) == "ok"
    assert time.sleeps == pytest.approx([7.0, 1.5])  # the second Retry-After is shorter


def test_retry_after_also_holds_back_the_next_run() -> None:
    """A run that gave up early still leaves the server's Retry-After for the next run to wait."""
    time = FakeTime()
    shared = retrier(time)
    with pytest.raises(TokenApiError):
        shared.run(Script(busy(retry_after_s=20.0)), deadline=time.now + 5)
    time.now += 5.0
    attempt = Script()
    assert shared.run(attempt, deadline=time.now + 60) == "ok"
    assert time.sleeps == pytest.approx([15.0])  # waited out the rest before its first try
    assert attempt.calls == 1


def test_deadline_ends_in_the_give_up_error_naming_the_last_failure() -> None:
    time = FakeTime()
    attempt = Script(*[busy()] * 50)
    with pytest.raises(TokenApiError) as caught:
        retrier(time).run(attempt, deadline=time.now + 30)
    assert str(caught.value) == f"the server answered 503: busy after {attempt.calls} attempts"
    assert isinstance(caught.value.__cause__, Retryable)
    assert sum(time.sleeps) <= 30.0


def test_no_deadline_left_means_one_try_and_no_sleep() -> None:
    time = FakeTime()
    with pytest.raises(TokenApiError, match=r"^the server answered 503: busy$"):
        retrier(time).run(Script(busy()), deadline=time.now)
    assert time.sleeps == []


def test_other_errors_end_the_run_at_once() -> None:
    time = FakeTime()
    attempt = Script(busy(), ValueError("not worth a retry"))
    with pytest.raises(ValueError, match="not worth a retry"):
        retrier(time).run(attempt, deadline=time.now + 100)
    assert attempt.calls == 2 and len(time.sleeps) == 1


def test_waiting_says_what_failed_and_when_the_next_try_is() -> None:
    time = FakeTime()
    shared = retrier(time, base=4.0, cap=60.0, rng=1.0)
    seen: list[tuple[str, float] | None] = []
    time.on_sleep = lambda _: seen.append(shared.waiting())
    assert shared.waiting() is None
    shared.run(Script(busy(), busy()), deadline=time.now + 100)
    assert seen == [("server error 503", 4.0), ("server error 503", 8.0)]
    assert shared.waiting() is None


def test_retry_after_header_forms() -> None:
    now = 1_700_000_000.0
    assert retry_after("7", now) == 7.0
    assert retry_after(" 12 ", now) == 12.0
    assert retry_after(formatdate(now + 20, usegmt=True), now) == pytest.approx(20.0, abs=1.0)
    assert retry_after(formatdate(now - 20, usegmt=True), now) == 0.0
    assert retry_after("99999", now) == RETRY_AFTER_MAX_S
    assert retry_after(None, now) is None
    assert retry_after("", now) is None
    assert retry_after("soon", now) is None
