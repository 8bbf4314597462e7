"""Where time comes from: the seams tests replace with a fake.

The monotonic clock times everything local (staleness, backoff, rates); the wall
clock dates what others check (token ``iat``/``exp``, invite expiry). Two
Protocols, so a fake for one need not fake the other; :class:`SystemClock`
is both.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where monotonic time comes from; tests pass a fake."""

    def monotonic(self) -> float: ...

    def monotonic_ns(self) -> int: ...


class WallClock(Protocol):
    """Where wall-clock time (seconds since the epoch) comes from; tests pass a fake."""

    def time(self) -> float: ...


class SystemClock:
    """The real clocks: monotonic and wall."""

    def monotonic(self) -> float:
        return time.monotonic()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def time(self) -> float:
        return time.time()
