"""The token API's per-client token buckets."""

from __future__ import annotations

import pytest

from relay.service.ratelimit import MAX_KEYS, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_up_to_the_minute_budget_then_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == 20  # one request refills every 60/3 s
    clock.now += 20
    assert limiter.take("a") is None
    assert limiter.take("a") is not None


def test_keys_are_independent() -> None:
    limiter = RateLimiter(1, FakeClock())
    assert limiter.take("a") is None
    assert limiter.take("b") is None
    assert limiter.take("a") is not None


def test_memory_stays_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock)
    for i in range(MAX_KEYS + 10):
        limiter.take(f"k{i}")
        clock.now += 0.001
    assert len(limiter._buckets) <= MAX_KEYS


def test_zero_budget_is_rejected() -> None:
    with pytest.raises(ValueError, match="per_min"):
        RateLimiter(0)
