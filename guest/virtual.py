"""An SDL virtual game controller: a pad made in software that pygame reads like a real one.

:class:`VirtualPad` attaches a joystick with ``SDL_JoystickAttachVirtualEx``
(type game controller, 6 axes, 21 buttons, button and axis masks so SDL builds
the GameController mapping itself: joystick button ``i`` is controller button
``i``) in the libSDL2 pygame uses, and sets its buttons and axes with
``SDL_JoystickSetVirtualButton/Axis``. SDL applies them on its next event pump,
so they reach the guest through exactly the path a real pad takes. Rumble asked
of the pad calls back into :meth:`VirtualPad._rumble`, which hands each call to
``on_rumble`` (the guest logs it as ``virtual_rumble``); an exception there is
counted in ``errors`` (:class:`guest.callbacks.CallbackErrors`, shown in the
status line), never unwound into SDL's C code.

A virtual pad has no device node, so it stands in for one: :meth:`VirtualPad.listen`
gives a reader its own pipe that each change makes readable (after the SDL
state is set), as the kernel makes an evdev node readable when a real pad
moves, and ``on_change`` hears each new state at that instant (the benchmark
stamps pad changes with it).

Values use GameController ranges (sticks -32768..32767, triggers 0..32767); a
trigger is stored on the joystick axis as -32768..32767 (SDL's convention) and
converted so the controller reads back exactly the value set. SDL 2.28 maps
buttons 0..19 for a virtual pad; the touchpad button (20) has no mapping.

Thread-safe: SDL locks its joystick list in each call, and a lock here keeps
attach/detach and the handle consistent, so a script thread may drive the pad
while the main thread pumps events.
"""

from __future__ import annotations

import ctypes
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from guest.callbacks import CallbackErrors
from guest.padmath import TRIGGERS, PadAxis, clamp_axis
from guest.sdl import (
    SDL,
    SDL_JOYSTICK_TYPE_GAMECONTROLLER,
    SDL_VIRTUAL_JOYSTICK_DESC_VERSION,
    RumbleCallback,
    VirtualJoystickDesc,
)
from guest.wake import Listeners, Waker
from relay.errors import DeviceError
from relay.frames import Button, PadState

NAME: Final = "coplay virtual pad"
VENDOR_ID: Final = 0x1209  # pid.codes' vendor id; the product id below is a local test value
PRODUCT_ID: Final = 0xC0B1
N_AXES: Final = 6
N_BUTTONS: Final = 21


@dataclass(frozen=True, slots=True)
class RumbleEvent:
    """One call of the pad's rumble callback (0/0 is SDL stopping it)."""

    low: int
    high: int
    at: float  # time.monotonic()


def _f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _controller_trigger(raw: int) -> int:
    """What SDL's GameController reads for joystick trigger value ``raw`` (its float32 maths)."""
    normalized = _f32(_f32(raw + 32768) / _f32(65535.0))
    return int(_f32(normalized * _f32(32767.0)))


def trigger_raw(value: int) -> int:
    """The joystick axis value that reads back as trigger ``value`` (0..32767) through SDL."""
    value = clamp_axis(PadAxis.TRIGGERLEFT, value)
    estimate = round(value * 65535 / 32767) - 32768
    for delta in (0, 1, -1, 2, -2, 3, -3):
        raw = min(max(estimate + delta, -32768), 32767)
        if _controller_trigger(raw) == value:
            return raw
    return min(max(estimate, -32768), 32767)


class VirtualPad:
    """A driver for one SDL virtual game controller (``attach`` first)."""

    def __init__(
        self,
        sdl: SDL,
        *,
        name: str = NAME,
        on_rumble: Callable[[RumbleEvent], None] | None = None,
        on_change: Callable[[PadState], None] | None = None,
        errors: CallbackErrors | None = None,
    ) -> None:
        self._sdl = sdl
        self.name = name
        self._on_rumble = on_rumble
        self._on_change = on_change
        self.errors = errors or CallbackErrors()
        self._listeners = Listeners()
        self._batch = 0  # > 0 inside set_state: one wake-up for the whole state
        self._lock = threading.RLock()  # not taken in _rumble: SDL calls it holding its own
        self._handle: int | None = None
        self._instance_id: int | None = None
        self._state = PadState()
        # Kept referenced for as long as SDL may call it (it keeps the pointer after attach).
        self._callback = RumbleCallback(self._rumble)
        self._name_bytes = name.encode("utf-8")[:127]

    # ------------------------------------------------------------------ lifecycle

    @property
    def attached(self) -> bool:
        return self._handle is not None

    @property
    def instance_id(self) -> int | None:
        return self._instance_id

    def attach(self) -> int:
        """Plug the pad in (idempotent); its SDL instance id. Buttons and sticks start at rest."""
        with self._lock:
            if self._instance_id is not None and self._handle is not None:
                return self._instance_id
            desc = VirtualJoystickDesc(
                version=SDL_VIRTUAL_JOYSTICK_DESC_VERSION,
                type=SDL_JOYSTICK_TYPE_GAMECONTROLLER,
                naxes=N_AXES,
                nbuttons=N_BUTTONS,
                nhats=0,
                vendor_id=VENDOR_ID,
                product_id=PRODUCT_ID,
                button_mask=(1 << N_BUTTONS) - 1,
                axis_mask=(1 << N_AXES) - 1,
                name=self._name_bytes,
                Rumble=self._callback,
            )
            index = self._sdl.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
            if index < 0:
                raise DeviceError(f"SDL cannot attach a virtual pad: {self._sdl.error()}")
            handle = self._sdl.SDL_JoystickOpen(index)
            if not handle:
                error = self._sdl.error()
                self._sdl.SDL_JoystickDetachVirtual(index)
                raise DeviceError(f"SDL cannot open its virtual pad: {error}")
            self._handle = handle
            self._instance_id = int(self._sdl.SDL_JoystickInstanceID(handle))
            self._state = PadState()
            for axis in TRIGGERS:  # at rest a trigger is at the bottom of the joystick range
                self._sdl.SDL_JoystickSetVirtualAxis(handle, axis, trigger_raw(0))
            return self._instance_id

    def detach(self) -> None:
        """Unplug the pad (idempotent): SDL reports it removed on its next pump."""
        with self._lock:
            handle, instance = self._handle, self._instance_id
            self._handle = None
            if handle is None:
                return
            index = self._device_index(instance)
            if index is not None:
                self._sdl.SDL_JoystickDetachVirtual(index)
            self._sdl.SDL_JoystickClose(handle)
            self._state = PadState()
            self._listeners.poke()  # as an unplugged node turns readable: look now

    close = detach

    def listen(self) -> Waker:
        """A descriptor of its own that becomes readable on every change (close it when done)."""
        return self._listeners.listen()

    def _changed_now(self) -> None:
        """The SDL state is set: tell whoever listens (called with the lock held)."""
        if self._batch:
            return
        if self._on_change is not None:
            self._on_change(self._state)
        self._listeners.poke()

    def _device_index(self, instance: int | None) -> int | None:
        for index in range(int(self._sdl.SDL_NumJoysticks())):
            if self._sdl.SDL_JoystickGetDeviceInstanceID(index) == instance:
                return index
        return None

    # ------------------------------------------------------------------ driving

    @property
    def state(self) -> PadState:
        """What was last set (neutral while detached)."""
        return self._state

    def set_button(self, button: Button | int, pressed: bool) -> None:
        with self._lock:
            handle = self._require()
            if self._sdl.SDL_JoystickSetVirtualButton(handle, int(button), int(pressed)) < 0:
                raise DeviceError(f"cannot set button {int(button)}: {self._sdl.error()}")
            bit = 1 << int(button)
            buttons = self._state.buttons | bit if pressed else self._state.buttons & ~bit
            self._state = self._state._replace(buttons=buttons)
            self._changed_now()

    def set_axis(self, axis: PadAxis | int, value: int) -> None:
        """Set an axis in GameController range (sticks -32768..32767, triggers 0..32767)."""
        axis = PadAxis(axis)
        value = clamp_axis(axis, value)
        raw = trigger_raw(value) if axis in TRIGGERS else value
        with self._lock:
            handle = self._require()
            if self._sdl.SDL_JoystickSetVirtualAxis(handle, int(axis), raw) < 0:
                raise DeviceError(f"cannot set axis {int(axis)}: {self._sdl.error()}")
            axes = list(self._state.axes)
            axes[axis] = value
            self._state = PadState(self._state.buttons, *axes)
            self._changed_now()

    def set_state(self, state: PadState) -> None:
        """Make the whole pad ``state`` (only what differs is set)."""
        with self._lock:
            old = self._state
            self._batch += 1
            try:
                for button in Button:
                    bit = 1 << button
                    if (old.buttons ^ state.buttons) & bit:
                        self.set_button(button, bool(state.buttons & bit))
                for axis, (before, after) in enumerate(zip(old.axes, state.axes, strict=True)):
                    if before != after:
                        self.set_axis(axis, after)
            finally:
                self._batch -= 1
            if self._state != old:
                self._changed_now()

    def _require(self) -> int:
        if self._handle is None:
            raise DeviceError("the virtual pad is not attached")
        return self._handle

    # ------------------------------------------------------------------ rumble

    def _rumble(self, userdata: int | None, low: int, high: int) -> int:
        """SDL's Rumble callback (on whichever thread asked SDL to rumble). Never raises."""
        played = False
        with self.errors.guard("virtual_pad_rumble"):  # must not unwind into SDL's C stack
            if self._on_rumble is not None:
                self._on_rumble(RumbleEvent(int(low), int(high), time.monotonic()))
            played = True
        return 0 if played else -1
