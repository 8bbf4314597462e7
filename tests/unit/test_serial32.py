"""The 32-bit frame clock and the sequence window (serial arithmetic mod 2**32)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.clock import Clock, SystemClock
from relay.serial32 import HALF, WRAP, elapsed_us, now_us32, seq_advances, us32

u32 = st.integers(0, WRAP - 1)
SETTINGS = settings(max_examples=300, deadline=None)


# ---------------------------------------------------------------- seq window


@pytest.mark.parametrize(
    ("last", "seq", "advances"),
    [
        (0, 1, True),
        (5, 6, True),
        (5, 5, False),  # duplicate
        (5, 4, False),  # older
        (5, 0, False),
        (0, HALF - 1, True),  # the far edge of the window
        (0, HALF, False),  # half way round: ambiguous, so refused
        (0, HALF + 1, False),
        (WRAP - 1, 0, True),  # wrap
        (WRAP - 1, 5, True),
        (WRAP - 2, WRAP - 1, True),
        (0, WRAP - 1, False),  # just before, across the wrap
        (3, WRAP - 3, False),
        (WRAP - 1, HALF - 2, True),
        (WRAP - 1, HALF - 1, False),
    ],
)
def test_seq_window(last: int, seq: int, advances: bool) -> None:
    assert seq_advances(last, seq) is advances


@SETTINGS
@given(last=u32, step=st.integers(1, HALF - 1))
def test_any_step_forward_in_the_window_advances(last: int, step: int) -> None:
    assert seq_advances(last, (last + step) % WRAP)


@SETTINGS
@given(last=u32, back=st.integers(0, HALF))
def test_a_repeat_or_any_step_back_does_not(last: int, back: int) -> None:
    assert not seq_advances(last, (last - back) % WRAP)


@SETTINGS
@given(a=u32, b=u32)
def test_at_most_one_of_two_seqs_is_newer(a: int, b: int) -> None:
    assert not (seq_advances(a, b) and seq_advances(b, a))
    if a != b and (a - b) % WRAP != HALF:
        assert seq_advances(a, b) or seq_advances(b, a)


def test_a_run_of_seqs_across_the_wrap_all_advance() -> None:
    last = WRAP - 3
    for _ in range(6):
        seq = (last + 1) % WRAP
        assert seq_advances(last, seq)
        last = seq
    assert last == 3


# ---------------------------------------------------------------- stamps


@pytest.mark.parametrize(
    ("now", "then", "expected"),
    [
        (100, 100, 0),
        (150, 100, 50),
        (5, WRAP - 5, 10),  # across the wrap
        (0, WRAP - 1, 1),
        (HALF - 1, 0, HALF - 1),
        (HALF, 0, None),  # too far: more likely from the future
        (100, 150, None),  # then lies in the future: another machine's clock
        (WRAP - 5, 5, None),
    ],
)
def test_elapsed_us(now: int, then: int, expected: int | None) -> None:
    assert elapsed_us(now, then) == expected


@SETTINGS
@given(then=u32, delta=st.integers(0, HALF - 1))
def test_elapsed_us_recovers_any_delay_below_half_the_range(then: int, delta: int) -> None:
    assert elapsed_us((then + delta) % WRAP, then) == delta


def test_us32_is_microseconds_mod_2_32() -> None:
    assert us32(0) == 0
    assert us32(999) == 0
    assert us32(1000) == 1
    assert us32(1_234_567_000) == 1_234_567
    assert us32(WRAP * 1000) == 0
    assert us32((WRAP + 7) * 1000 + 999) == 7


def test_now_us32_follows_the_monotonic_clock() -> None:
    before = us32(time.monotonic_ns())
    stamp = now_us32()
    after = us32(time.monotonic_ns())
    assert 0 <= stamp < WRAP
    assert elapsed_us(stamp, before) is not None
    assert elapsed_us(after, stamp) is not None


def test_system_clock_satisfies_the_protocol() -> None:
    clock: Clock = SystemClock()
    a = clock.monotonic_ns()
    b = clock.monotonic_ns()
    assert b >= a
    assert abs(clock.monotonic() - time.monotonic()) < 5.0


class FakeClock:
    """A clock a test moves by hand (what host and guest tests pass in)."""

    def __init__(self) -> None:
        self.ns = 0

    def monotonic(self) -> float:
        return self.ns / 1e9

    def monotonic_ns(self) -> int:
        return self.ns


def test_a_fake_clock_satisfies_the_protocol() -> None:
    fake = FakeClock()
    clock: Clock = fake
    fake.ns = 2_500_000_000
    assert clock.monotonic() == 2.5
    assert us32(clock.monotonic_ns()) == 2_500_000
