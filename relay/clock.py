"""Where time comes from: the seam tests replace with a fake.

The monotonic clock times everything local (staleness, backoff, rates); the wall
clock dates what others check (token ``iat``/``exp``, invite expiry).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where time comes from; tests pass a fake."""

    def monotonic(self) -> float: ...

    def monotonic_ns(self) -> int: ...


class SystemClock:
    """The real monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()
