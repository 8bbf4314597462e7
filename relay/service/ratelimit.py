"""Per-client rate limiting for the token API: one token bucket per key.

A bucket holds ``per_min`` requests and refills at ``per_min / 60`` per
second, so a client may burst up to its minute's budget and then gets one
request per refill interval. :meth:`RateLimiter.take` answers how long to wait
(for ``Retry-After``) when the bucket is empty. Keys are whatever the API
chooses (client address, app client id); idle full buckets are forgotten so
memory stays bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

MAX_KEYS: Final = 10_000


class RateLimiter:
    """Token buckets keyed by client; not thread-safe (one asyncio loop uses it)."""

    def __init__(self, per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_min < 1:
            raise ValueError("per_min must be at least 1")
        self._capacity = float(per_min)
        self._rate = per_min / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last update)

    def take(self, key: str) -> int | None:
        """Spend one request for ``key``: None if allowed, else whole seconds to wait."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self._rate))
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_KEYS:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        full_after = self._capacity / self._rate
        for key, (_, last) in list(self._buckets.items()):
            if now - last >= full_after:
                del self._buckets[key]
        if len(self._buckets) > MAX_KEYS:  # still too many busy keys: forget the oldest half
            ordered = sorted(self._buckets.items(), key=lambda item: item[1][1])
            for key, _ in ordered[: len(ordered) // 2]:
                del self._buckets[key]
