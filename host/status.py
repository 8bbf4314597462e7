"""The streamer's view at a glance: who sits where, frames per second, latency, drops."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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
    lines: Sequence[SeatLine], link: str, drops: Mapping[str, int], sink: str = ""
) -> str:
    """One short line: ``P2 alice 60.0/s p50 0.41ms | P3 free | link connected | drops 3``.

    ``sink``, when not empty, says the pad writes fail (``sink failing (...)``).
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
    return " | ".join(parts)
