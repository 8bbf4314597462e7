"""Pure helpers on :class:`~relay.frames.PadState`: axes by SDL number, buttons, deadzone."""

from __future__ import annotations

import enum
import math

from relay.frames import AXIS_MAX, AXIS_MIN, TRIGGER_MAX, Button, PadState


class PadAxis(enum.IntEnum):
    """SDL GameController axis numbers (``SDL_CONTROLLER_AXIS_*``)."""

    LEFTX = 0
    LEFTY = 1
    RIGHTX = 2
    RIGHTY = 3
    TRIGGERLEFT = 4
    TRIGGERRIGHT = 5


TRIGGERS = frozenset({PadAxis.TRIGGERLEFT, PadAxis.TRIGGERRIGHT})


def clamp_axis(axis: int, value: int) -> int:
    """``value`` clamped to the range of ``axis`` (sticks -32768..32767, triggers 0..32767)."""
    low = 0 if axis in TRIGGERS else AXIS_MIN
    high = TRIGGER_MAX if axis in TRIGGERS else AXIS_MAX
    return min(max(int(value), low), high)


def with_axis(state: PadState, axis: int, value: int) -> PadState:
    """``state`` with SDL axis number ``axis`` set to ``value`` (clamped); unknown axes ignored."""
    if not 0 <= axis <= PadAxis.TRIGGERRIGHT:
        return state
    axes = list(state.axes)
    axes[axis] = clamp_axis(axis, value)
    return PadState(state.buttons, *axes)


def with_button(state: PadState, button: int, pressed: bool) -> PadState:
    """``state`` with SDL button number ``button`` held or released; unknown buttons ignored."""
    if not 0 <= button <= max(Button):
        return state
    bit = 1 << button
    buttons = state.buttons | bit if pressed else state.buttons & ~bit
    return state._replace(buttons=buttons)


def radial_deadzone(x: int, y: int, deadzone: float) -> tuple[int, int]:
    """A stick position with a radial deadzone applied and the rest rescaled to full range.

    ``deadzone`` is a fraction of full deflection (0 = off). Inside it the stick is
    centred; outside, the distance is rescaled so the edge of the deadzone is 0 and
    full deflection stays full, keeping the direction.
    """
    if deadzone <= 0.0:
        return x, y
    magnitude = math.hypot(x, y) / AXIS_MAX
    if magnitude <= deadzone:
        return 0, 0
    scale = min(1.0, (magnitude - deadzone) / (1.0 - deadzone)) / magnitude
    return (
        min(max(round(x * scale), AXIS_MIN), AXIS_MAX),
        min(max(round(y * scale), AXIS_MIN), AXIS_MAX),
    )


def apply_deadzone(state: PadState, deadzone: float) -> PadState:
    """Both sticks of ``state`` through :func:`radial_deadzone` (triggers untouched)."""
    if deadzone <= 0.0:
        return state
    lx, ly = radial_deadzone(state.lx, state.ly, deadzone)
    rx, ry = radial_deadzone(state.rx, state.ry, deadzone)
    return state._replace(lx=lx, ly=ly, rx=rx, ry=ry)
