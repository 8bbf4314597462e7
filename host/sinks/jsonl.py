"""The ``jsonl:PATH`` sink: one JSON object per applied state, the format DESIGN pins.

::

    {"t_ns": <host monotonic ns>, "seat": 2, "user": "alice", "epoch": 123,
     "seq": 45, "buttons": 1, "axes": [lx, ly, rx, ry, lt, rt],
     "reason": "input" | "stale" | "bye" | "shutdown", "lat_us": <host_now - t, or null>}

Each line goes out with one ``write(2)`` on a file opened for appending, so a
reader tailing the file never sees half a line and nothing waits in a buffer.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from host.sinks.base import REASON_INPUT, FrameMeta, RumbleCallback
from relay.errors import ConfigError
from relay.frames import NEUTRAL, PadState


class JsonlLine(msgspec.Struct, frozen=True, gc=False):
    """One line of the jsonl sink, fields in the documented order."""

    t_ns: int
    seat: int
    user: str | None
    epoch: int | None
    seq: int | None
    buttons: int
    axes: tuple[int, int, int, int, int, int]
    reason: str
    lat_us: int | None


class JsonlSink:
    """Appends a line per state to ``path``, flushed as it is written."""

    nonblocking = True  # appends to the page cache

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1
        self._encoder = msgspec.json.Encoder()

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        if self._fd >= 0:
            return
        try:
            if self._path.parent != Path():
                self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"sink jsonl:{self._path}: cannot open for writing: {exc.strerror or exc}"
            ) from exc

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        self._write(seat, state, REASON_INPUT, meta)

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        self._write(seat, NEUTRAL, reason, meta._replace(seq=None, lat_us=None))

    def _write(self, seat: int, state: PadState, reason: str, meta: FrameMeta) -> None:
        line = JsonlLine(
            meta.now_ns,
            seat,
            meta.user,
            meta.epoch,
            meta.seq,
            state.buttons,
            state.axes,
            reason,
            meta.lat_us,
        )
        os.write(self._fd, self._encoder.encode(line) + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
