"""The README's Performance tables, rendered from ``tests/bench/results/summary.json``.

``make bench`` prints this block at the end and writes it to
``tests/bench/results/README.md``, ready to paste into README.md's Performance
section. Alone: ``.venv/bin/python -m tests.bench.readme``.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.bench.stats import RESULTS

BUSY_LOAD = 1.0  # a 1-minute load average above this per core: say the machine was busy


def lscpu_model() -> str:
    """``lscpu``'s model name (or /proc/cpuinfo's), e.g. "AMD EPYC 7B13"."""
    if shutil.which("lscpu"):
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _ms(us: float) -> str:
    return "-" if us is None or math.isnan(us) else f"{us / 1000:.2f} ms"


def _latency_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for key, label in (("latency_mosquitto", "Mosquitto"), ("latency_embedded", "embedded broker")):
        r = results.get(key)
        if not r:
            continue
        paths = [
            ("bare paho pub -> sub", r["bare_paho_us"]),
            ("guest send stamp -> host sink", r["coplay_us"]),
            ("pad change -> host sink", r["pad_change_us"]),
            (
                f"pad change -> host sink, first after {r['rest_s']:g} s rest",
                r["pad_change_rest_us"],
            ),
        ]
        polled = r.get("polled")
        if polled:
            paths += [
                (
                    "pad change -> host sink, pad polled (`pad_wake = false`)",
                    polled["pad_change_us"],
                ),
                ("pad change -> host sink, pad polled, after rest", polled["pad_change_rest_us"]),
            ]
        for name, s in paths:
            cells = [_ms(s[k]) for k in ("p50", "p90", "p99", "p99.9", "max")]
            rows.append(f"| {label}: {name} | {int(s['n'])} | " + " | ".join(cells) + " |")
    return rows


def render(summary: dict[str, Any]) -> str:
    about = summary["machine"]
    loads = summary.get("load_average", {})
    peak = max((max(pair) for pair in loads.values()), default=0.0)
    cores = int(about.get("cores") or 1)
    busy = peak > BUSY_LOAD * cores
    cpu = about.get("lscpu_model") or about.get("cpu", "unknown CPU")
    lines = [
        f"Measured by `make bench` (`python -m tests.bench`{' --quick' if summary['quick'] else ''}"
        f", {summary['elapsed_s']:.0f} s) on {about['date']}: {cpu}, {cores} cores, "
        f"Python {about['python']}, Linux {about['kernel']}; 1-minute load average up to "
        f"{peak:.1f}.",
    ]
    if busy:
        lines.append(
            "**This run was on a shared, busy machine** (the load average above exceeds its "
            "cores): latency tails and CPU figures are inflated; rerun `make bench` on a quiet "
            "machine for numbers to quote."
        )
    rows = _latency_rows(summary["results"])
    if rows:
        lines += [
            "",
            "| path (120 Hz; loopback; every sample from the first) | n | p50 | p90 | p99 | p99.9"
            " | max |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    lines += ["", "| DESIGN budget | measured | budget | verdict |", "|---|---|---|---|"]
    for b in summary["budgets"]:
        value = "-" if b["value"] is None else f"{b['value']:.3g} {b['unit']}"
        limit = f"<= {b['limit']:.3g} {b['unit']}" + (f" ({b['rule']})" if b["rule"] else "")
        verdict = "met" if b["met"] else ("not measured" if b["met"] is None else "**missed**")
        lines.append(f"| {b['bench']}: {b['measure']} | {value} | {limit} | {verdict} |")
    for name, why in summary.get("failed", {}).items():
        lines.append(f"| {name} | could not run: {why} | - | - |")
    return "\n".join(lines) + "\n"


def write(summary: dict[str, Any]) -> Path:
    path = RESULTS / "README.md"
    path.write_text(render(summary))
    return path


def main() -> int:
    summary = json.loads((RESULTS / "summary.json").read_text())
    print(render(summary), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
