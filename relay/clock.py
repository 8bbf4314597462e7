"""The frame clock: CLOCK_MONOTONIC in microseconds, modulo 2**32, as frames carry it."""

from __future__ import annotations

import time
from typing import Protocol

WRAP = 1 << 32
HALF = 1 << 31


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
