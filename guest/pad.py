"""Where pad states come from: the :class:`PadSource` seam and the pygame GameController source.

:class:`PygamePadSource` reads one controller through SDL's GameController
mapping (``pygame._sdl2.controller``), so A/B/X/Y mean the same on every pad.
Each :meth:`~PygamePadSource.poll` drains every pending SDL event and returns
the states that must go out, in order: usually none or one (all changes in the
batch coalesced), but a button pressed and released within one batch gives two,
so a short tap is never lost.

Waking on a change: :attr:`PadSource.waker` is a descriptor that becomes
readable when the open pad changes (see :mod:`guest.wake`): by default our own
descriptor on the device node SDL reads the pad from (Linux evdev, the path
from ``SDL_JoystickPathForIndex``), or what ``wakers`` gives for a device (the
virtual pad's pipe). None means nothing can tell, and the loop polls.

Hot-plug: when the pad is unplugged the state goes neutral at once (and the
source looks for another pad that fits); when a fitting pad appears it is
opened and its state read. :class:`guest.devices.Selection` says which pad
fits.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import structlog

from guest.devices import DeviceInfo, Selection, device_info, list_devices
from guest.padmath import apply_deadzone, with_axis, with_button
from guest.sdl import SDL
from guest.wake import Waker, node_waker
from relay.frames import NEUTRAL, Button, PadState

N_CONTROLLER_BUTTONS = max(Button) + 1
N_CONTROLLER_AXES = 6


class PadSource(Protocol):
    """A pad the guest reads; every method runs on the guest's main thread."""

    @property
    def state(self) -> PadState:
        """The current state (neutral when no pad is there)."""
        ...

    @property
    def controller_name(self) -> str | None:
        """The open pad's name, or None while there is none."""
        ...

    @property
    def waker(self) -> Waker | None:
        """Readable when the open pad changed; None when only polling can tell."""
        ...

    def poll(self) -> list[PadState]:
        """Take every pending input event; the states to send, in order ([] if unchanged)."""
        ...

    def rumble(self, low: int, high: int, ms: int) -> bool:
        """Play rumble (0..65535 each) for ``ms`` (capped); False if the pad cannot."""
        ...

    def close(self) -> None: ...


def rumble_strength(value: int) -> float:
    """A 0..65535 rumble value as the 0..1 float pygame wants, truncating back to ``value``."""
    value = min(max(int(value), 0), 0xFFFF)
    return 1.0 if value == 0xFFFF else (value + 0.5) / 0xFFFF


def read_controller(controller: Any) -> PadState:
    """Every button and axis of an open ``pygame._sdl2.controller.Controller``, as read now."""
    state = NEUTRAL
    for button in range(N_CONTROLLER_BUTTONS):
        if controller.get_button(button):
            state = with_button(state, button, True)
    for axis in range(N_CONTROLLER_AXES):
        state = with_axis(state, axis, controller.get_axis(axis))
    return state


def event_types(pygame: ModuleType) -> dict[str, int]:
    """The pygame event numbers :meth:`PygamePadSource.poll` handles, by a short name."""
    return {
        "axis": pygame.CONTROLLERAXISMOTION,
        "down": pygame.CONTROLLERBUTTONDOWN,
        "up": pygame.CONTROLLERBUTTONUP,
        "added": pygame.CONTROLLERDEVICEADDED,
        "removed": pygame.CONTROLLERDEVICEREMOVED,
        "quit": pygame.QUIT,
    }


def play_rumble(controller: Any, low: int, high: int, ms: int) -> bool:
    """Rumble ``controller`` (0..65535 each) for ``ms``; 0 ms or 0/0 stops it (pygame.error)."""
    if ms == 0 or (low == 0 and high == 0):
        controller.stop_rumble()
        return True
    return bool(controller.rumble(rumble_strength(low), rumble_strength(high), ms))


class PygamePadSource:
    """One SDL game controller read through pygame, with hot-plug."""

    def __init__(
        self,
        pygame: ModuleType,
        sdl: SDL,
        selection: Selection,
        *,
        deadzone: float = 0.0,
        rumble_cap_ms: int = 2000,
        wakers: Callable[[int], Waker | None] | None = None,
    ) -> None:
        self._pg = pygame
        self._controllers: Any = pygame._sdl2.controller
        self._sdl = sdl
        self.selection = selection
        self._deadzone = deadzone
        self._rumble_cap_ms = rumble_cap_ms
        self._wakers = wakers or (lambda index: node_waker(sdl.device_path(index)))
        self._waker: Waker | None = None
        self._log = structlog.get_logger("guest.pad")
        self._controller: Any = None
        self._instance: int | None = None
        self._name: str | None = None
        self._raw = NEUTRAL  # as read, before the deadzone
        self._state = NEUTRAL
        self.quit_requested = False
        self._types = event_types(pygame)
        self._scan()
        if self._controller is None:
            self._log.warning("pad_missing", selection=str(selection))

    # ------------------------------------------------------------------ PadSource

    @property
    def state(self) -> PadState:
        return self._state

    @property
    def controller_name(self) -> str | None:
        return self._name

    @property
    def waker(self) -> Waker | None:
        return self._waker

    def poll(self) -> list[PadState]:
        waker = self._waker
        if waker is not None and not waker.drain():  # drain before the pump: none is missed
            waker.close()
            self._waker = None  # the node is gone; SDL reports the removal in this pump
        try:
            events = self._pg.event.get()
        except (SystemError, KeyError) as exc:
            # pygame 2.6 fails a whole batch when a device comes and goes before it is
            # drained (its joystick map loses the instance); read the pad afresh instead.
            self._log.warning("pad_events_lost", error=str(exc.__cause__ or exc))
            return self._reread()
        if not events:
            return []
        out: list[PadState] = []
        mark = self._state  # the last state handed out
        raw = self._raw
        t = self._types
        for event in events:
            kind = event.type
            if kind == t["axis"]:
                if event.instance_id == self._instance:
                    raw = with_axis(raw, event.axis, event.value)
            elif kind == t["down"] or kind == t["up"]:
                if event.instance_id != self._instance:
                    continue
                pressed = kind == t["down"]
                bit = 1 << event.button
                if bool(raw.buttons & bit) == pressed:
                    continue
                if (raw.buttons ^ mark.buttons) & bit:
                    # this reverts an edge not yet handed out: hand it out first (taps survive)
                    mark = apply_deadzone(raw, self._deadzone)
                    out.append(mark)
                raw = with_button(raw, event.button, pressed)
            elif kind == t["removed"]:
                if event.instance_id == self._instance:
                    if raw.buttons != mark.buttons:
                        mark = apply_deadzone(raw, self._deadzone)
                        out.append(mark)
                    self._close_controller("unplugged")
                    raw = NEUTRAL
                    self._raw = raw
                    if self._scan():
                        raw = self._raw
            elif kind == t["added"]:
                if self._controller is None and self._try_open(event.device_index):
                    if raw.buttons != mark.buttons:
                        mark = apply_deadzone(raw, self._deadzone)
                        out.append(mark)
                    raw = self._raw
            elif kind == t["quit"]:
                self.quit_requested = True
        self._raw = raw
        final = apply_deadzone(raw, self._deadzone)
        if final != mark:
            out.append(final)
        self._state = final
        return out

    def _reread(self) -> list[PadState]:
        """The state read straight from the pad (or the next one that fits) after lost events."""
        controller = self._controller
        raw = NEUTRAL
        try:
            if controller is not None and controller.attached():
                raw = read_controller(controller)
            else:
                self._close_controller("unplugged")
                if self._scan():
                    raw = self._raw
        except Exception:  # pygame.error: it went away meanwhile
            self._close_controller("unplugged")
        self._raw = raw
        state = apply_deadzone(raw, self._deadzone)
        changed = state != self._state
        self._state = state
        return [state] if changed else []

    def rumble(self, low: int, high: int, ms: int) -> bool:
        controller = self._controller
        if controller is None:
            return False
        try:
            return play_rumble(controller, low, high, min(max(int(ms), 0), self._rumble_cap_ms))
        except Exception as exc:  # pygame.error: the pad went away meanwhile
            self._log.debug("rumble_failed", error=str(exc))
            return False

    def close(self) -> None:
        self._close_controller("closed")

    # ------------------------------------------------------------------ devices

    def _scan(self) -> bool:
        """Open the first device that fits the selection; True if one was opened."""
        for device in list_devices(self._sdl):
            if self._matches(device) and self._try_open(device.index):
                return True
        return False

    def _matches(self, device: DeviceInfo) -> bool:
        return self.selection.matches(device.index, device.name, device.guid, device.is_controller)

    def _try_open(self, index: int) -> bool:
        try:
            device = device_info(self._sdl, index)
        except Exception:
            return False
        if not self._matches(device):
            return False
        try:
            controller = self._controllers.Controller(index)
            raw = read_controller(controller)
        except Exception as exc:  # pygame.error: gone again, or no mapping after all
            self._log.warning("pad_open_failed", index=index, name=device.name, error=str(exc))
            return False
        self._controller = controller
        self._instance = int(self._sdl.SDL_JoystickGetDeviceInstanceID(index))
        self._name = device.name or f"controller {index}"
        self._raw = raw
        self._waker = self._open_waker(index)
        self._log.info(
            "pad_opened",
            index=index,
            name=self._name,
            guid=device.guid,
            wake="node" if self._waker is not None else "poll",
        )
        return True

    def _open_waker(self, index: int) -> Waker | None:
        try:
            return self._wakers(index)
        except Exception as exc:  # a broken waker must not cost the pad: poll instead
            self._log.warning("pad_wake_unavailable", index=index, error=str(exc))
            return None

    def _close_controller(self, why: str) -> None:
        waker, self._waker = self._waker, None
        if waker is not None:
            waker.close()
        controller, self._controller = self._controller, None
        if controller is None:
            return
        name, self._name, self._instance = self._name, None, None
        self._raw = NEUTRAL
        try:
            controller.quit()
        except Exception as exc:  # pygame.error
            self._log.debug("pad_close_failed", error=str(exc))
        if why == "unplugged":
            self._log.warning("pad_unplugged", name=name)
