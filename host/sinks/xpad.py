"""The pure half of the uinput sink: an Xbox 360 pad as the kernel's xpad driver declares it.

No device I/O here, so all of it is unit-testable on any machine:

- :data:`CAPABILITIES`, ids and name: what the virtual pad declares (vendor
  0x045e, product 0x028e, bus USB, so SDL, Steam and Proton see an
  "X360 Controller").
- :func:`state_events` / :func:`diff_events`: a :class:`~relay.frames.PadState`
  as ``(type, code, value)`` input events.
- :class:`RumbleMapper`: force-feedback effects a game uploads and plays, as
  :class:`~relay.frames.Rumble` frames for the guest, with a capped duration.

Event codes are the Linux input ABI (``linux/input-event-codes.h``), written
out so this module does not need python-evdev; a unit test checks them
against ``evdev.ecodes``.

Mapping (SDL GameController button -> xpad code):
A BTN_SOUTH, B BTN_EAST, X BTN_NORTH, Y BTN_WEST, BACK BTN_SELECT, GUIDE BTN_MODE,
START BTN_START, LEFTSTICK BTN_THUMBL, RIGHTSTICK BTN_THUMBR, LEFTSHOULDER BTN_TL,
RIGHTSHOULDER BTN_TR; the D-pad on ABS_HAT0X (left -1, right +1) and ABS_HAT0Y
(up -1, down +1), opposite directions held together cancel to 0 as on a real
hat; MISC1, PADDLE1-4 and TOUCHPAD have no place on a 360 pad and are ignored.

Axes: ABS_X/ABS_Y left stick, ABS_RX/ABS_RY right stick, -32768..32767 with
fuzz 16 and flat 128, values passed through unchanged. Sign convention: SDL's
GameController Y axes are positive *down*, and so are xpad's ABS_Y/ABS_RY (the
driver inverts the USB report), and SDL reads them back without inverting, so
a guest's ``ly = +32767`` is "stick pushed down" on both ends. Triggers: ABS_Z
(left) and ABS_RZ (right), 0..255, scaled from SDL's 0..32767 with rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

from relay.frames import NEUTRAL, Button, PadState, Rumble

# ------------------------------------------------------------------ input ABI constants
EV_SYN: Final = 0x00
EV_KEY: Final = 0x01
EV_ABS: Final = 0x03
EV_FF: Final = 0x15
EV_UINPUT: Final = 0x0101
SYN_REPORT: Final = 0
UI_FF_UPLOAD: Final = 1
UI_FF_ERASE: Final = 2
BUS_USB: Final = 0x03

BTN_SOUTH: Final = 0x130
BTN_EAST: Final = 0x131
BTN_NORTH: Final = 0x133
BTN_WEST: Final = 0x134
BTN_TL: Final = 0x136
BTN_TR: Final = 0x137
BTN_SELECT: Final = 0x13A
BTN_START: Final = 0x13B
BTN_MODE: Final = 0x13C
BTN_THUMBL: Final = 0x13D
BTN_THUMBR: Final = 0x13E

ABS_X: Final = 0x00
ABS_Y: Final = 0x01
ABS_Z: Final = 0x02
ABS_RX: Final = 0x03
ABS_RY: Final = 0x04
ABS_RZ: Final = 0x05
ABS_HAT0X: Final = 0x10
ABS_HAT0Y: Final = 0x11

FF_RUMBLE: Final = 0x50
FF_GAIN: Final = 0x60

# ------------------------------------------------------------------ the pad
VENDOR: Final = 0x045E
PRODUCT: Final = 0x028E
VERSION: Final = 0x0110
MAX_EFFECTS: Final = 16


def pad_name(seat: int) -> str:
    return f"coplay P{seat}"


PHYS_MAX: Final = 79  # the kernel keeps at most 80 bytes of phys, NUL included


def pad_phys(device_id: str, seat: int) -> str:
    """The pad's ``phys``: the same for this host and seat on every start.

    Steam, SDL and games tell controllers of one model apart by it and keep
    per-controller settings; a stable one means P2 keeps its bindings across
    restarts of the host. (uinput has no way to set ``uniq``.)
    """
    return f"coplay/{device_id}/seat{seat}"[-PHYS_MAX:]


BUTTON_CODES: Final[tuple[tuple[int, int], ...]] = (
    (Button.A, BTN_SOUTH),
    (Button.B, BTN_EAST),
    (Button.X, BTN_NORTH),
    (Button.Y, BTN_WEST),
    (Button.BACK, BTN_SELECT),
    (Button.GUIDE, BTN_MODE),
    (Button.START, BTN_START),
    (Button.LEFTSTICK, BTN_THUMBL),
    (Button.RIGHTSTICK, BTN_THUMBR),
    (Button.LEFTSHOULDER, BTN_TL),
    (Button.RIGHTSHOULDER, BTN_TR),
)
_DPAD_UP: Final = 1 << Button.DPAD_UP
_DPAD_DOWN: Final = 1 << Button.DPAD_DOWN
_DPAD_LEFT: Final = 1 << Button.DPAD_LEFT
_DPAD_RIGHT: Final = 1 << Button.DPAD_RIGHT


class AbsSpec(NamedTuple):
    """``input_absinfo``: value, min, max, fuzz, flat, resolution (python-evdev's AbsInfo order)."""

    value: int
    min: int
    max: int
    fuzz: int
    flat: int
    resolution: int


STICK: Final = AbsSpec(0, -32768, 32767, 16, 128, 0)
TRIGGER: Final = AbsSpec(0, 0, 255, 0, 0, 0)
HAT: Final = AbsSpec(0, -1, 1, 0, 0, 0)

ABS_AXES: Final[tuple[tuple[int, AbsSpec], ...]] = (
    (ABS_X, STICK),
    (ABS_Y, STICK),
    (ABS_Z, TRIGGER),
    (ABS_RX, STICK),
    (ABS_RY, STICK),
    (ABS_RZ, TRIGGER),
    (ABS_HAT0X, HAT),
    (ABS_HAT0Y, HAT),
)

CAPABILITIES: Final[dict[int, list[int] | list[tuple[int, AbsSpec]]]] = {
    EV_KEY: [code for _, code in BUTTON_CODES],
    EV_ABS: list(ABS_AXES),
    EV_FF: [FF_RUMBLE],
}

Event = tuple[int, int, int]


def trigger_value(value: int) -> int:
    """SDL's 0..32767 trigger as xpad's 0..255, rounded (out-of-range values clamped)."""
    value = min(max(value, 0), 32767)
    return (value * 255 + 16383) // 32767


def hat_values(buttons: int) -> tuple[int, int]:
    """(HAT0X, HAT0Y) for the D-pad bits; opposite directions held together cancel."""
    x = bool(buttons & _DPAD_RIGHT) - bool(buttons & _DPAD_LEFT)
    y = bool(buttons & _DPAD_DOWN) - bool(buttons & _DPAD_UP)
    return x, y


def _values(state: PadState) -> Iterator[Event]:
    buttons = state.buttons
    for bit, code in BUTTON_CODES:
        yield EV_KEY, code, buttons >> bit & 1
    hat_x, hat_y = hat_values(buttons)
    yield EV_ABS, ABS_HAT0X, hat_x
    yield EV_ABS, ABS_HAT0Y, hat_y
    yield EV_ABS, ABS_X, state.lx
    yield EV_ABS, ABS_Y, state.ly
    yield EV_ABS, ABS_RX, state.rx
    yield EV_ABS, ABS_RY, state.ry
    yield EV_ABS, ABS_Z, trigger_value(state.lt)
    yield EV_ABS, ABS_RZ, trigger_value(state.rt)


def state_events(state: PadState) -> list[Event]:
    """Every key and axis of ``state`` (no SYN_REPORT)."""
    return list(_values(state))


def diff_events(old: PadState | None, new: PadState) -> list[Event]:
    """Only what changed from ``old`` to ``new`` (everything when ``old`` is None); no SYN."""
    if old is None:
        return state_events(new)
    if old == new:
        return []
    pairs = zip(_values(new), _values(old), strict=True)
    return [event for event, before in pairs if event != before]


def neutral_events(old: PadState | None) -> list[Event]:
    """What releases everything a pad holds in ``old``."""
    return diff_events(old, NEUTRAL)


# ------------------------------------------------------------------ force feedback


@dataclass(slots=True)
class _Effect:
    strong: int
    weak: int
    length_ms: int
    playing: bool = False


class RumbleMapper:
    """Rumble effects a game uploads and plays on the virtual pad, as Rumble frames.

    ``strong`` (the heavy, low-frequency motor) becomes ``Rumble.low`` and ``weak``
    becomes ``Rumble.high``, as SDL_GameControllerRumble orders them. A duration of 0
    ("until stopped") and anything longer than ``cap_ms`` is sent as ``cap_ms``, so
    a lost stop never leaves the guest's pad shaking; a stop is ``Rumble(0, 0, 0)``.
    """

    STOP: Final = Rumble(0, 0, 0)

    def __init__(self, cap_ms: int) -> None:
        if not 1 <= cap_ms <= 0xFFFF:
            raise ValueError("cap_ms must be 1..65535")
        self._cap = cap_ms
        self._effects: dict[int, _Effect] = {}
        self._gain = 0xFFFF

    def _frame(self, effect: _Effect) -> Rumble:
        low = effect.strong * self._gain // 0xFFFF
        high = effect.weak * self._gain // 0xFFFF
        if not low and not high:
            return self.STOP
        length = effect.length_ms
        ms = self._cap if length <= 0 or length > self._cap else length
        return Rumble(low, high, ms)

    def upload(
        self, effect_id: int, effect_type: int, strong: int, weak: int, length_ms: int
    ) -> Rumble | None:
        """A new or updated effect; an update of a playing effect plays the new values."""
        if effect_type != FF_RUMBLE:
            return None
        old = self._effects.get(effect_id)
        effect = _Effect(strong & 0xFFFF, weak & 0xFFFF, length_ms & 0xFFFF)
        if old is not None and old.playing:
            effect.playing = True
            self._effects[effect_id] = effect
            return self._frame(effect)
        self._effects[effect_id] = effect
        return None

    def erase(self, effect_id: int) -> Rumble | None:
        effect = self._effects.pop(effect_id, None)
        if effect is not None and effect.playing and not self._any_playing():
            return self.STOP
        return None

    def play(self, effect_id: int, count: int) -> Rumble | None:
        """EV_FF ``code=effect_id``: ``count`` > 0 starts it, 0 stops it."""
        effect = self._effects.get(effect_id)
        if effect is None:
            return None
        if count > 0:
            effect.playing = True
            return self._frame(effect)
        was_playing = effect.playing
        effect.playing = False
        if was_playing and not self._any_playing():
            return self.STOP
        return None

    def set_gain(self, gain: int) -> None:
        self._gain = min(max(gain, 0), 0xFFFF)

    def _any_playing(self) -> bool:
        return any(effect.playing for effect in self._effects.values())

    def event(self, code: int, value: int) -> Rumble | None:
        """An EV_FF event the game wrote to the pad."""
        if code == FF_GAIN:
            self.set_gain(value)
            return None
        return self.play(code, value)
