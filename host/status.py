"""The streamer's view at a glance: who sits where, frames per second, latency, drops.

:func:`status_text` formats the one line; :class:`StatusReport` gathers what it
shows from snapshots (the writer's :meth:`~host.writer.PadWriter.stats`, the
intake's, the drop and fault counters', the link's status) on the main thread,
and logs it (``host_status``) or tells systemd (``STATUS=``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from host.drops import DropCounter, merge_counts
from host.parts import HostParts
from host.writerstats import WriterStats
from relay.linkstatus import LinkState, LinkStatus


@dataclass(frozen=True, slots=True)
class SeatLine:
    seat: int
    user: str  # "" = free
    fps: float
    lat_p50_ms: float | None  # None: no same-clock latency (remote guest, or no frames)
    stale: bool


def p50_ms(latencies_us: Sequence[int]) -> float | None:
    if not latencies_us:
        return None
    return round(statistics.median(latencies_us) / 1000, 2)


def seat_lines(
    occupancy: Sequence[tuple[int, str]],
    applied: Mapping[int, int],
    latencies: Mapping[int, Sequence[int]],
    stale: Mapping[int, bool],
    interval_s: float,
) -> list[SeatLine]:
    return [
        SeatLine(
            seat=seat,
            user=user,
            fps=round(applied.get(seat, 0) / interval_s, 1) if interval_s > 0 else 0.0,
            lat_p50_ms=p50_ms(latencies.get(seat, ())),
            stale=stale.get(seat, False),
        )
        for seat, user in occupancy
    ]


def status_text(
    lines: Sequence[SeatLine],
    link: str,
    drops: Mapping[str, int],
    sink: str = "",
    callback_errors: int = 0,
) -> str:
    """One short line: ``P2 alice 60.0/s p50 0.41ms | P3 free | link connected | drops 3``.

    ``sink``, when not empty, says the pad writes fail (``sink failing (...)``);
    ``callback_errors`` (exceptions in callbacks, see :mod:`host.faults`) shows when not 0.
    """
    parts = []
    for line in lines:
        if not line.user:
            parts.append(f"P{line.seat} free")
            continue
        text = f"P{line.seat} {line.user} {line.fps:g}/s"
        if line.lat_p50_ms is not None:
            text += f" p50 {line.lat_p50_ms:g}ms"
        if line.stale:
            text += " (silent)"
        parts.append(text)
    parts.append(f"link {link}")
    if sink:
        parts.append(sink)
    parts.append(f"drops {sum(drops.values())}")
    if callback_errors:
        parts.append(f"callback errors {callback_errors}")
    return " | ".join(parts)


def link_text(status: LinkStatus) -> str:
    """``connected``, or ``reconnecting (connection refused)``: the state and why."""
    if status.reason and status.state is not LinkState.CONNECTED:
        return f"{status.state.value} ({status.reason})"
    return status.state.value


def sink_text(stats: WriterStats) -> str:
    """ "" while pad writes succeed, else what failed (for the status line)."""
    if stats.sink.failing_since is None:
        return ""
    return f"sink failing ({stats.sink.error})"


class StatusReport:
    """The ``host_status`` log line and systemd's ``STATUS=``, read from snapshots."""

    def __init__(self, parts: HostParts, drops: DropCounter, logger: Any) -> None:
        self._writer, self._intake, self._faults = parts.writer, parts.intake, parts.faults
        self._notifier = parts.notifier
        self._drops = drops  # the daemon's, before the seat table
        self._log = logger
        self._last_notified = ""

    def drops(self, stats: WriterStats | None = None) -> dict[str, int]:
        """Every drop counter as one sorted dict: the daemon's, the table's, the queue's..."""
        stats = stats if stats is not None else self._writer.stats()
        over = self._intake.counts()["over_budget"]
        extra = [("over_budget", over)] if over else []
        return merge_counts(self._drops.snapshot().items(), stats.drops.items(), extra)

    def faults(self, link: LinkStatus) -> dict[str, int]:
        """Exceptions in callbacks by where they ran: the host's own, and the link's (``link``)."""
        faults = dict(self._faults.counts())
        if link.callback_errors:
            faults["link"] = link.callback_errors
        return faults

    def log(self, elapsed: float, link: LinkStatus) -> None:
        """The ``host_status`` line for the last ``elapsed`` seconds."""
        stats = self._writer.stats()
        per_seat = self._writer.take_seat_stats()
        lines = seat_lines(
            stats.occupancy(),
            {seat: s.frames for seat, s in per_seat.items()},
            {seat: s.latencies for seat, s in per_seat.items()},
            {view.seat: view.stale for view in stats.seats},
            elapsed,
        )
        drops = self.drops(stats)
        faults = self.faults(link)
        text = link_text(link)
        self._log.info(
            "host_status",
            status=status_text(lines, text, drops, sink_text(stats), sum(faults.values())),
            seats=[
                {"seat": x.seat, "user": x.user or None, "fps": x.fps, "lat_p50_ms": x.lat_p50_ms}
                for x in lines
            ],
            link=text,
            drops=drops,
            coalesced=stats.coalesced,
            sink_errors=stats.sink.errors,
            writer_wakeups=stats.wakeups,
            callback_errors=faults,
            intake=self._intake.counts(),
        )

    def notify(self, link: LinkStatus) -> None:
        """``STATUS=`` for systemd, when it changed."""
        stats = self._writer.stats()
        seats = ", ".join(f"P{seat} {user or 'free'}" for seat, user in stats.occupancy())
        text = f"STATUS={seats}; link {link_text(link)}"
        sink = sink_text(stats)
        if sink:
            text += f"; {sink}"
        errors = sum(self.faults(link).values())
        if errors:
            text += f"; callback errors {errors}"
        if text != self._last_notified:
            self._last_notified = text
            self._notifier.notify(text)
