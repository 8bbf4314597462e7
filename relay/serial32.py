"""32-bit serial arithmetic: the microsecond stamps and sequence numbers frames carry.

Stamps are CLOCK_MONOTONIC in microseconds modulo 2**32; ``seq`` counts modulo 2**32.
Where time itself comes from (the seam tests replace) is :mod:`relay.clock`.
"""

from __future__ import annotations

import time

WRAP = 1 << 32
HALF = 1 << 31


def us32(ns: int) -> int:
    """A monotonic time in ns as the 32-bit microsecond stamp frames carry."""
    return (ns // 1000) % WRAP


def now_us32() -> int:
    return us32(time.monotonic_ns())


def elapsed_us(now: int, then: int) -> int | None:
    """``now - then`` for two 32-bit stamps, or None when ``then`` lies in the future.

    A negative difference means the stamps come from different clocks (another
    machine), so no one-way latency can be told.
    """
    diff = (now - then) % WRAP
    return diff if diff < HALF else None


def seq_advances(last: int, seq: int) -> bool:
    """True when ``seq`` is newer than ``last`` in 32-bit serial arithmetic."""
    return 1 <= (seq - last) % WRAP < HALF
