"""What the friend sees in the terminal: one live status line.

On a terminal the line is rewritten in place (``\\r``) a few times a second,
and log lines clear it first (:class:`LineStream` wraps stderr for both). Off a
terminal (a pipe, a file, the journal) the status is a ``guest_status`` log
event, written when something that matters changes (state, seat, host,
controller, note, callback errors) and every ``plain_interval`` seconds otherwise, so a log
shows what happened without a line per frame.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from guest.session import SessionView

CLEAR_LINE = "\r\x1b[K"
SHOWN = frozenset({"state", "seat", "host_online", "rtt_p50_ms", "jitter_ms", "note"})


@dataclass(frozen=True, slots=True)
class StatusView:
    state: str
    seat: int | None
    host_online: bool | None
    rtt_p50_ms: float | None
    jitter_ms: float | None
    fps: float
    controller: str | None
    note: str = ""
    callback_errors: int = 0  # exceptions caught in library callbacks (guest.callbacks)

    @classmethod
    def of(
        cls, session: SessionView, fps: float, controller: str | None, callback_errors: int = 0
    ) -> StatusView:
        shared = {f: getattr(session, f) for f in SessionView.__dataclass_fields__ if f in SHOWN}
        return cls(**shared, fps=fps, controller=controller, callback_errors=callback_errors)

    def key(self) -> tuple[Any, ...]:
        """What counts as a change worth a plain line right away."""
        return (
            self.state,
            self.seat,
            self.host_online,
            self.controller,
            self.note,
            self.callback_errors,
        )

    def fields(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "seat": self.seat,
            "host": {True: "online", False: "offline", None: "unknown"}[self.host_online],
            "rtt_p50_ms": None if self.rtt_p50_ms is None else round(self.rtt_p50_ms, 2),
            "jitter_ms": None if self.jitter_ms is None else round(self.jitter_ms, 2),
            "fps": round(self.fps, 1),
            "controller": self.controller or "none",
            "note": self.note,
            "callback_errors": self.callback_errors,
        }


def format_line(view: StatusView) -> str:
    """``connected | seat 2 | host online | rtt 3.1 ms ±0.4 | 60 fps | pad: Xbox ...``"""
    parts = [view.state]
    parts.append(f"seat {view.seat}" if view.seat is not None else "no seat")
    if view.host_online is not None:
        parts.append("host online" if view.host_online else "host offline")
    if view.rtt_p50_ms is not None:
        rtt = f"rtt {view.rtt_p50_ms:.1f} ms"
        if view.jitter_ms is not None:
            rtt += f" ±{view.jitter_ms:.1f}"
        parts.append(rtt)
    parts.append(f"{view.fps:.0f} fps")
    parts.append(f"pad: {view.controller}" if view.controller else "pad: none (plug one in)")
    if view.note:
        parts.append(view.note)
    if view.callback_errors:
        s = "" if view.callback_errors == 1 else "s"
        parts.append(f"{view.callback_errors} callback error{s} (see the log)")
    return " | ".join(parts)


class LineStream:
    """stderr with a status line at the bottom: anything written clears the line first."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._shown = False

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())

    def write(self, text: str) -> int:
        with self._lock:
            if self._shown and text:
                self._stream.write(CLEAR_LINE)
                self._shown = False
            return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def show(self, line: str) -> None:
        """Draw (or redraw) the status line, without a newline."""
        with self._lock:
            self._stream.write(CLEAR_LINE + line)
            self._stream.flush()
            self._shown = True

    def end(self) -> None:
        """Leave the last status line on screen and move below it."""
        with self._lock:
            if self._shown:
                self._stream.write("\n")
                self._stream.flush()
                self._shown = False


class FrameRate:
    """Frames per second from a growing counter, over windows of at least ``window`` s."""

    def __init__(self, window: float = 1.0) -> None:
        self._window = window
        self._t0 = -math.inf
        self._n0 = 0
        self.value = 0.0

    def update(self, now: float, count: int) -> float:
        if self._t0 == -math.inf:
            self._t0, self._n0 = now, count
        elif now - self._t0 >= self._window:
            self.value = (count - self._n0) / (now - self._t0)
            self._t0, self._n0 = now, count
        return self.value


class StatusReporter:
    """Shows :class:`StatusView` snapshots: a live line on a tty, log events otherwise."""

    def __init__(
        self,
        *,
        line: LineStream | None,
        log: Callable[..., Any],
        tty_interval: float = 0.25,
        plain_interval: float = 5.0,
    ) -> None:
        self._line = line
        self._log = log
        self._interval = tty_interval if line is not None else plain_interval
        self._next = -math.inf
        self._last_key: tuple[Any, ...] | None = None
        self.last: StatusView | None = None

    def next_due(self) -> float:
        return self._next

    def update(self, now: float, view: StatusView) -> None:
        changed = view.key() != self._last_key
        if not changed and now < self._next:
            return
        self._last_key = view.key()
        self._next = now + self._interval
        self.last = view
        if self._line is not None:
            self._line.show(format_line(view))
        else:
            self._log("guest_status", **view.fields())

    def finish(self) -> None:
        if self._line is not None:
            self._line.end()
