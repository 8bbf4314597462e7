"""Pad change -> host sink: the guest's change stamps matched by content to the host's jsonl lines.

The guest runs with ``COPLAY_VIRTUAL_STAMPS=PATH`` (see ``guest/script.py``): its
virtual pad records ``time.monotonic_ns()`` at the instant each change is set in
SDL, before anything is told, and the state it made. Host and guest share the
machine's CLOCK_MONOTONIC, so ``sink t_ns - change t_ns`` is the whole latency
a player feels: the guest noticing the change, the frame, the broker, the host.
Each stamp is matched to the first applied input at or after it with the same
buttons and axes (keyframes repeat a state; the first line is the one that
counts). The matched line's ``lat_us`` (from the guest's send stamp) is kept
beside it, so the two latencies are compared frame by frame.
"""

from __future__ import annotations

import bisect
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.drive import pad_state
from tests.support.guest_proc import GuestProcess
from tests.support.host_process import Line

REST_S = 2.0  # the pad rests at least this long before each "first change after rest"
# Each rest is longer by a different fraction of this (a golden-ratio sequence), so the
# changes land at phases spread evenly over the guest's keyframe and poll schedules; a
# whole 2 s is a whole number of 60 Hz keyframes and 8.3 ms polls, and would hit one
# phase every time.
PHASE_SPREAD_S = 1 / 60
_GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class Stamp:
    t_ns: int
    key: tuple[int, tuple[int, ...]]  # (buttons, axes)


@dataclass(frozen=True)
class Match:
    change_us: float  # pad change -> sink write
    send_us: float | None  # the same frame's lat_us (guest send stamp -> sink write)


def read_stamps(path: Path) -> list[Stamp]:
    stamps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        stamps.append(Stamp(int(obj["t_ns"]), (int(obj["buttons"]), tuple(obj["axes"]))))
    return stamps


def match(stamps: list[Stamp], lines: list[Line]) -> tuple[list[Match], int]:
    """Each stamp's first applied input with the same content; (matches, stamps unmatched)."""
    by_key: dict[tuple[int, tuple[int, ...]], list[Line]] = {}
    for line in lines:
        if line.get("reason") == "input":
            key = (int(line["buttons"]), tuple(line["axes"]))
            by_key.setdefault(key, []).append(line)
    found: list[Match] = []
    missing = 0
    for stamp in stamps:
        candidates = by_key.get(stamp.key, [])
        i = bisect.bisect_left([c["t_ns"] for c in candidates], stamp.t_ns)
        if i == len(candidates):
            missing += 1
            continue
        line = candidates[i]
        lat = line.get("lat_us")
        found.append(Match((line["t_ns"] - stamp.t_ns) / 1000, None if lat is None else float(lat)))
    return found, missing


def rest_drive(guest: GuestProcess, samples: int, first_index: int, rest_s: float = REST_S) -> int:
    """``samples`` single changes, each after ``rest_s`` (+ a phase offset) of a resting pad."""
    for k in range(samples):
        offset = (k * _GOLDEN % 1.0) * PHASE_SPREAD_S
        time.sleep(rest_s + offset)  # the rest is the measurement's condition: nothing to await
        guest.send(state=pad_state(first_index + k))
    return samples
