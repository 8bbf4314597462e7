"""The ``log`` sink: pad state changes as human-readable log lines.

A line when the held buttons change or the pad goes neutral; stick and trigger
movement alone is logged at debug level and throttled. These lines reveal what
a player presses, so they are for trying the host out, not for production.
"""

from __future__ import annotations

from typing import Any

import structlog

from host.sinks.base import FrameMeta, RumbleCallback
from relay.frames import Button, PadState
from relay.logs import Throttle


def button_names(buttons: int) -> str:
    """``"A+DPAD_UP"`` for a ``buttons`` bit field; ``"-"`` when none is held."""
    names = [button.name for button in Button if buttons >> button & 1]
    return "+".join(names) if names else "-"


class LogSink:
    nonblocking = False  # stderr may be a pipe to a slow journal

    def __init__(self, logger: Any = None, throttle_s: float = 0.5) -> None:
        self._log = logger if logger is not None else structlog.get_logger("host.pad")
        self._buttons: dict[int, int | None] = {}
        self._throttle = Throttle(throttle_s)

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        self._buttons[seat] = None
        self._log.info("pad_created", seat=seat, sink="log")

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        if self._buttons.get(seat) != state.buttons:
            self._buttons[seat] = state.buttons
            self._log.info(
                "pad_state",
                seat=seat,
                user=meta.user,
                buttons=button_names(state.buttons),
                axes=list(state.axes),
                lat_us=meta.lat_us,
            )
        elif self._throttle.allow(f"axes{seat}"):
            self._log.debug("pad_axes", seat=seat, user=meta.user, axes=list(state.axes))

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        self._buttons[seat] = 0
        self._log.info("pad_neutral", seat=seat, user=meta.user, reason=reason)

    def close(self) -> None:
        for seat in self._buttons:
            self._log.info("pad_closed", seat=seat, sink="log")
        self._buttons.clear()
