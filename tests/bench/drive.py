"""Driving a real guest's virtual pad from the benchmark, and reading the host's jsonl sink.

The guest runs ``--source virtual`` with ``COPLAY_VIRTUAL_SCRIPT=-``: each line
written to its stdin is a script command played on its own SDL virtual pad, so
every change goes through the guest's real pygame path (SDL event pump,
GameController mapping, sender) before it becomes an Input frame. The commands
are the guest's script format, fed live on a fixed schedule rather than as a
file of ``sleep`` steps, whose overshoots would add up to a rate below 120 Hz.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tests.support.guest_proc import GuestProcess
from tests.support.host_process import HostProcess, Line

INPUT = "input"
STALE = "stale"


@dataclass(frozen=True)
class Drive:
    """What was driven: host-comparable monotonic ns (one machine, one CLOCK_MONOTONIC)."""

    start_ns: int
    end_ns: int
    changes: int


def pad_state(i: int) -> dict[str, int]:
    """The i-th state: the left stick moves every step, A toggles every 15 steps (8 Hz)."""
    lx = (i * 7919) % 60001 - 30000
    return {"buttons": (i // 15) & 1, "lx": lx, "ly": -lx // 2}


def drive(guest: GuestProcess, rate_hz: float, seconds: float) -> Drive:
    """Change the guest's pad ``rate_hz`` times a second for ``seconds``, on a fixed schedule."""
    period = 1.0 / rate_hz
    start = time.monotonic()
    start_ns = time.monotonic_ns()
    count = int(rate_hz * seconds)
    for i in range(count):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # a fixed-rate input source: the wait is the rate
        guest.send(state=pad_state(i))
    return Drive(start_ns, time.monotonic_ns(), count)


def inputs(lines: list[Line]) -> list[Line]:
    return [x for x in lines if x.get("reason") == INPUT]


def wait_inputs(host: HostProcess, after: int = 0, timeout: float = 30.0) -> list[Line]:
    """Until the sink holds an applied input at line index ``after`` or later."""

    def seen(lines: list[Line]) -> bool:
        return any(x.get("reason") == INPUT for x in lines[after:])

    return host.jsonl.wait_for(seen, timeout, host.alive)
