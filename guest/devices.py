"""Which pads there are and which one to read: :class:`Selection` and SDL's device list.

:class:`Selection` says which pad fits: ``auto`` (the first game
controller), a device index, a GUID (32 hex digits) or a name
(case-insensitive substring). :func:`list_devices` asks SDL what it sees
without opening anything (``coplay-guest devices`` prints it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from guest.sdl import SDL

_GUID = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which controller to read."""

    kind: Literal["auto", "index", "guid", "name"]
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Selection:
        """``auto`` | an index | a GUID (32 hex digits) | a name (substring, any case)."""
        text = text.strip()
        if text.lower() in ("", "auto"):
            return cls("auto")
        if text.isdigit():
            return cls("index", str(int(text)))
        if _GUID.fullmatch(text):
            return cls("guid", text.lower())
        return cls("name", text)

    def matches(self, index: int, name: str, guid: str, is_controller: bool) -> bool:
        if not is_controller:
            return False
        if self.kind == "index":
            return index == int(self.value)
        if self.kind == "guid":
            return guid.lower() == self.value
        if self.kind == "name":
            return self.value.casefold() in name.casefold()
        return True

    def __str__(self) -> str:
        return self.kind if self.kind == "auto" else f"{self.kind} {self.value!r}"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    name: str
    guid: str
    is_controller: bool
    virtual: bool


def device_info(sdl: SDL, index: int) -> DeviceInfo:
    """What SDL says about joystick ``index`` (nothing is opened)."""
    return DeviceInfo(
        index=index,
        name=sdl.device_name(index),
        guid=sdl.device_guid(index),
        is_controller=bool(sdl.SDL_IsGameController(index)),
        virtual=bool(sdl.SDL_JoystickIsVirtual(index)),
    )


def list_devices(sdl: SDL) -> list[DeviceInfo]:
    """Every joystick SDL sees now (nothing is opened)."""
    return [device_info(sdl, i) for i in range(int(sdl.SDL_NumJoysticks()))]
