"""A frozen guest (SIGSTOP) -> the host drives its pad neutral: the delay, freeze after freeze.

A real host (``stale_ms`` 250, jsonl sink) and a real guest (idle pad, 60 Hz
keyframes) through Mosquitto. Each round waits until inputs flow, freezes the
guest with SIGSTOP at a random phase, waits for the sink's ``stale`` line, then
SIGCONT and waits for inputs to be applied again.

The delay is measured from the last input the host applied before the freeze
to the ``stale`` line, both ``t_ns`` stamps of the host's monotonic clock (the
stale timer runs from the last frame received, so this is what the host
controls). The delay from the moment of SIGSTOP (the benchmark's monotonic
clock, the same CLOCK_MONOTONIC) is reported beside it. DESIGN budget: every
delay <= ``stale_ms`` + 50 ms.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

from tests.bench.budget import Budget
from tests.bench.drive import INPUT, STALE, wait_inputs
from tests.bench.rig import Rig
from tests.bench.stats import summary, table, write_json
from tests.support.guest_proc import GuestProcess
from tests.support.host_process import HostProcess, Line

STALE_MS = 250
SLACK_MS = 50
REFERENCE = "host t_ns of the last input applied before the freeze -> host t_ns of the stale line"


def _index(lines: list[Line], reason: str, after: int) -> int | None:
    return next((i for i in range(after, len(lines)) if lines[i].get("reason") == reason), None)


def freeze_once(host: HostProcess, guest: GuestProcess, mark: int) -> tuple[dict[str, float], int]:
    """SIGSTOP, await the stale line (index >= ``mark``), SIGCONT; the delays, the next index."""
    stop_ns = time.monotonic_ns()
    guest.signal(signal.SIGSTOP)
    try:
        lines = host.jsonl.wait_for(lambda ls: _index(ls, STALE, mark) is not None, 10, host.alive)
    finally:
        guest.signal(signal.SIGCONT)
    at = _index(lines, STALE, mark)
    assert at is not None
    last_input = next(x for x in reversed(lines[:at]) if x.get("reason") == INPUT)
    stale_ns = lines[at]["t_ns"]
    delays = {
        "from_last_input_ms": (stale_ns - last_input["t_ns"]) / 1e6,
        "from_sigstop_ms": (stale_ns - stop_ns) / 1e6,
    }
    return delays, at + 1


def run(rig: Rig, workdir: Path, freezes: int = 20, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    place = rig.place()
    rounds: list[dict[str, float]] = []
    with rig.host(workdir / "host", place, stale_ms=STALE_MS) as host:
        host.wait_ready()
        guest = rig.guest(workdir / "guest", place)
        try:
            mark = len(wait_inputs(host))
            for _ in range(freezes):
                mark = len(wait_inputs(host, after=mark))
                time.sleep(rng.uniform(0.02, 0.1))  # freeze at a random phase of the keyframes
                one, mark = freeze_once(host, guest, mark)
                rounds.append(one)
                mark = len(wait_inputs(host, after=mark, timeout=15))  # resumed
        finally:
            guest.close()
        host.stop()
    delays = [r["from_last_input_ms"] for r in rounds]
    worst = max(delays)
    budget = Budget(
        "frozen guest -> neutral",
        f"max delay over {len(delays)} freezes",
        worst,
        STALE_MS + SLACK_MS,
        "ms",
        rule="stale_ms + 50 ms, every freeze",
    )
    print(
        table(
            f"Frozen guest (SIGSTOP) -> pad neutral, {len(delays)} freezes via {rig.name}, "
            f"stale_ms {STALE_MS}; reference: {REFERENCE}",
            ["freeze", "from last applied input, ms", "from SIGSTOP, ms", "within budget"],
            [
                [
                    i + 1,
                    r["from_last_input_ms"],
                    r["from_sigstop_ms"],
                    "yes" if r["from_last_input_ms"] <= budget.limit else "NO",
                ]
                for i, r in enumerate(rounds)
            ],
        )
    )
    print(f"  max delay: {worst:.1f} ms ({budget.limit_text()}) -> {budget.verdict()}")
    result = {
        "broker": rig.name,
        "stale_ms": STALE_MS,
        "reference": REFERENCE,
        "rounds": rounds,
        "from_last_input_ms": summary(delays),
        "from_sigstop_ms": summary([r["from_sigstop_ms"] for r in rounds]),
        "budgets": [budget.as_dict()],
    }
    write_json("freeze", result)
    result["budget_objects"] = [budget]
    return result
