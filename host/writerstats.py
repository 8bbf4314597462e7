"""What the pad writer counts, and the copies of it others read.

:class:`WriteTally` is filled by one batch of sink writes (outside the lock);
the writer adds it to its counters and to :class:`SinkHealth` under its lock.
:class:`WriterStats` and :class:`SeatStats` are the snapshots it hands out.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from host.seats import SeatView
from relay.logs import Throttle

LATENCIES_KEPT: Final = 1024  # per seat, between two takes


class SeatStats(NamedTuple):
    frames: int
    latencies: tuple[int, ...]


class SinkState(NamedTuple):
    errors: int  # writes that raised OSError, ever
    error: str  # the last one, as text
    failing_since: float | None  # monotonic s the current run of failures began; None: fine


@dataclass(frozen=True, slots=True)
class WriterStats:
    """The writer at one moment (a copy: read it from any thread)."""

    seats: tuple[SeatView, ...]
    drops: dict[str, int]  # the seat table's, and queue_overflow
    coalesced: int  # states merged in the queue
    wakeups: int  # times the writer thread woke (for work, a stop, or a timer)
    sink: SinkState
    beat: float  # the thread's last pass (monotonic s)
    alive: bool
    failed: str  # what ended the thread ("" while it runs or ended cleanly)

    def occupancy(self) -> list[tuple[int, str]]:
        return [(view.seat, view.user or "") for view in self.seats]


@dataclass(slots=True)
class WriteTally:
    """One batch of sink writes, in order."""

    applied: list[tuple[int, int | None]] = field(default_factory=list)  # (seat, latency us)
    errors: int = 0
    error: str = ""
    went_through: bool = False  # a write after the last failure (or none failed) succeeded
    run_start_ns: int | None = None  # when the failures at the batch's end began

    def succeeded(self) -> None:
        self.went_through = True
        self.run_start_ns = None

    def failed(self, exc: OSError, now_ns: int) -> None:
        self.errors += 1
        self.error = exc.strerror or str(exc) or type(exc).__name__
        if self.run_start_ns is None:
            self.run_start_ns = now_ns


class SeatCounters:
    """States applied per seat and their latencies, since the last :meth:`take`."""

    def __init__(self, seats: Iterable[int]) -> None:
        self._applied: Counter[int] = Counter()
        self._latencies = {seat: deque[int](maxlen=LATENCIES_KEPT) for seat in seats}

    def add(self, tally: WriteTally) -> None:
        for seat, lat in tally.applied:
            self._applied[seat] += 1
            if lat is not None:
                self._latencies[seat].append(lat)

    def take(self) -> dict[int, SeatStats]:
        applied, self._applied = self._applied, Counter()
        taken = {}
        for seat, lats in self._latencies.items():
            taken[seat] = SeatStats(applied.get(seat, 0), tuple(lats))
            lats.clear()
        return taken


class SinkHealth:
    """Failed sink writes: how many, the last, since when (its owner holds the lock)."""

    def __init__(self, logger: Any) -> None:
        self._log = logger
        self._throttle = Throttle(10.0)
        self._errors = 0
        self._error = ""
        self._failing_since: float | None = None

    def add(self, tally: WriteTally) -> None:
        if tally.errors:
            self._errors += tally.errors
            self._error = tally.error
        start = None if tally.run_start_ns is None else tally.run_start_ns / 1e9
        if not tally.went_through and (start is None or self._failing_since is not None):
            return  # no write went through, and the run of failures goes on (or none)
        self._failing_since = start
        if start is not None and self._throttle.allow("sink_failing"):
            self._log.error("sink_failing", error=self._error)

    def snapshot(self) -> SinkState:
        return SinkState(self._errors, self._error, self._failing_since)
