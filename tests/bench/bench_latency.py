"""Guest input -> host sink latency at 120 Hz, beside a bare paho baseline through the same broker.

One run per broker (a :class:`~tests.bench.rig.Rig`):

1. the bare baseline: a paho publisher process -> a paho subscriber
   (``tests.bench.baseline``), 120 Hz, both with TCP_NODELAY;
2. coplay: a real ``coplay-host`` (jsonl sink) and a real ``coplay-guest``
   (``--source virtual``) whose pad changes every 1/120 s; the latency of
   every applied input is the sink's ``lat_us`` (host monotonic clock at the
   sink write minus the frame's ``t``, stamped by the guest as it sent it).

Every sample counts, from the host's first applied frame (the warm-up and the
first second are not discarded). DESIGN budgets: via Mosquitto p50 within
1.25x of the bare p50, p99 <= 2 ms, p99.9 <= 5 ms; via the embedded broker
p50 <= 1.6 ms.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tests.bench.baseline import bare_paho_latency
from tests.bench.budget import Budget
from tests.bench.drive import drive, inputs, wait_inputs
from tests.bench.rig import Rig
from tests.bench.stats import summary, table, write_json

RATE_HZ = 120
RATIO_BUDGET = 1.25
P99_BUDGET_MS = 2.0
P999_BUDGET_MS = 5.0
EMBEDDED_P50_BUDGET_MS = 1.6
TAIL_S = 0.05  # frames in flight when the drive ends still count


def coplay_latency(rig: Rig, workdir: Path, seconds: float) -> dict[str, Any]:
    """Host + guest processes on ``rig``; every applied input's ``lat_us``."""
    place = rig.place()
    with rig.host(workdir / "host", place) as host:
        host.wait_ready()
        guest = rig.guest(workdir / "guest", place)
        try:
            wait_inputs(host)
            driven = drive(guest, RATE_HZ, seconds)
            end = driven.end_ns + int(TAIL_S * 1e9)
            host.jsonl.wait_for(lambda ls: bool(ls) and ls[-1]["t_ns"] >= end, 15, host.alive)
        finally:
            guest.close()
        host.stop()
        applied = [x for x in inputs(host.jsonl.lines()) if x["t_ns"] <= end]
    lats = [x["lat_us"] for x in applied if x["lat_us"] is not None]
    slow = sorted((x for x in applied if x["lat_us"] is not None), key=lambda x: -x["lat_us"])
    return {
        "lat_us": lats,
        "slowest": [
            {"at_s": round((x["t_ns"] - driven.start_ns) / 1e9, 3), "lat_us": x["lat_us"]}
            for x in slow[:10]
        ],
        "changes_driven": driven.changes,
        "applied": len(applied),
        "before_drive": sum(1 for x in applied if x["t_ns"] < driven.start_ns),
        "no_lat": len(applied) - len(lats),
        "drive_seconds": (driven.end_ns - driven.start_ns) / 1e9,
    }


def run(rig: Rig, workdir: Path, seconds: float) -> dict[str, Any]:
    pub, sub = rig.logins()
    bare = bare_paho_latency(rig.port, pub, sub, rig.place().prefix, RATE_HZ, seconds)
    ours = coplay_latency(rig, workdir, seconds)
    host_s, bare_s = summary(ours["lat_us"]), summary(bare)
    ratio = host_s["p50"] / bare_s["p50"] if bare_s["p50"] else math.nan
    budgets = _budgets(rig.name, host_s, ratio)
    print(_table(rig.name, seconds, host_s, bare_s, ratio, ours))
    print(
        "  slowest coplay samples (s into the drive: ms): "
        + ", ".join(f"{x['at_s']:.2f}: {x['lat_us'] / 1000:.1f}" for x in ours["slowest"][:6])
    )
    for b in budgets:
        print(f"  {b.measure}: {b.value:.3f} {b.unit} ({b.limit_text()}) -> {b.verdict()}")
    result = {
        "broker": rig.name,
        "rate_hz": RATE_HZ,
        "seconds": seconds,
        "coplay_us": host_s,
        "bare_paho_us": bare_s,
        "p50_ratio": ratio,
        "changes_driven": ours["changes_driven"],
        "applied": ours["applied"],
        "slowest": ours["slowest"],
        "applied_before_drive": ours["before_drive"],
        "applied_without_lat": ours["no_lat"],
        "bare_received": len(bare),
        "bare_expected": int(RATE_HZ * seconds),
        "budgets": [b.as_dict() for b in budgets],
    }
    write_json(f"latency_{rig.name}", result)
    result["budget_objects"] = budgets
    return result


def _budgets(broker: str, host_s: dict[str, float], ratio: float) -> list[Budget]:
    bench = f"latency via {broker}"
    if broker == "embedded":
        return [
            Budget(bench, "p50 latency", host_s["p50"] / 1000, EMBEDDED_P50_BUDGET_MS, "ms"),
        ]
    return [
        Budget(bench, "p50 / bare paho p50", ratio, RATIO_BUDGET, "x"),
        Budget(bench, "p99 latency", host_s["p99"] / 1000, P99_BUDGET_MS, "ms"),
        Budget(bench, "p99.9 latency", host_s["p99.9"] / 1000, P999_BUDGET_MS, "ms"),
    ]


def _row(name: str, s: dict[str, float]) -> list[Any]:
    return [name, int(s["n"]), *(s[k] / 1000 for k in ("p50", "p90", "p99", "p99.9", "max"))]


def _table(
    broker: str,
    seconds: float,
    host_s: dict[str, float],
    bare_s: dict[str, float],
    ratio: float,
    ours: dict[str, Any],
) -> str:
    title = (
        f"Latency via {broker}, {RATE_HZ} Hz for {seconds:g} s, ms, every sample from the first "
        f"(coplay: {ours['changes_driven']} pad changes driven, {ours['applied']} inputs applied, "
        f"{ours['before_drive']} of them keyframes before the drive; p50 ratio {ratio:.2f}x)"
    )
    return table(
        title,
        ["path", "n", "p50", "p90", "p99", "p99.9", "max"],
        [
            _row("guest -> host sink (coplay)", host_s),
            _row("bare paho pub -> sub", bare_s),
        ],
    )
