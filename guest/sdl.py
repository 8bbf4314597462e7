"""ctypes access to the libSDL2 that pygame itself loaded, and how pygame is brought up.

pygame wheels bundle their own libSDL2: ``pygame/SDL2.dll`` on Windows,
``pygame/.dylibs/libSDL2-2.0.0.dylib`` on macOS, ``pygame.libs/libSDL2-2-*.so*``
on Linux. A virtual joystick exists only inside one SDL instance, so
:func:`find_sdl` names the library pygame loaded (on Linux the one mapped into
this process, ``/proc/self/maps``; elsewhere the wheel's file beside the
package; for a pygame built on a system SDL, ``ctypes.util.find_library``) and
:func:`load_sdl` opens that exact file: ``dlopen``/``LoadLibrary`` of an
already-loaded path returns the same handle, so both talk to one SDL. Every
function used gets its ``restype`` and ``argtypes`` here, once.

:func:`init_pygame` sets the SDL environment before pygame is imported (no
support prompt, joystick events while unfocused, no window unless asked) and
initialises the display (the event queue needs it), joystick and game
controller subsystems.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from relay.errors import DeviceError

SDL_JOYSTICK_TYPE_GAMECONTROLLER = 1
SDL_VIRTUAL_JOYSTICK_DESC_VERSION = 1

# int Rumble(void *userdata, Uint16 low_frequency_rumble, Uint16 high_frequency_rumble)
RumbleCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint16, ctypes.c_uint16)


class VirtualJoystickDesc(ctypes.Structure):
    """``SDL_VirtualJoystickDesc`` as SDL 2.24-2.30 define it (version 1)."""

    _fields_ = (
        ("version", ctypes.c_uint16),
        ("type", ctypes.c_uint16),
        ("naxes", ctypes.c_uint16),
        ("nbuttons", ctypes.c_uint16),
        ("nhats", ctypes.c_uint16),
        ("vendor_id", ctypes.c_uint16),
        ("product_id", ctypes.c_uint16),
        ("padding", ctypes.c_uint16),
        ("button_mask", ctypes.c_uint32),
        ("axis_mask", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("userdata", ctypes.c_void_p),
        ("Update", ctypes.c_void_p),
        ("SetPlayerIndex", ctypes.c_void_p),
        ("Rumble", RumbleCallback),
        ("RumbleTriggers", ctypes.c_void_p),
        ("SetLED", ctypes.c_void_p),
        ("SendEffect", ctypes.c_void_p),
    )


class JoystickGUID(ctypes.Structure):
    """``SDL_JoystickGUID``: 16 bytes, passed and returned by value."""

    _fields_ = (("data", ctypes.c_uint8 * 16),)


_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "SDL_GetError": (ctypes.c_char_p, []),
    "SDL_NumJoysticks": (ctypes.c_int, []),
    "SDL_JoystickAttachVirtualEx": (ctypes.c_int, [ctypes.POINTER(VirtualJoystickDesc)]),
    "SDL_JoystickDetachVirtual": (ctypes.c_int, [ctypes.c_int]),
    "SDL_JoystickIsVirtual": (ctypes.c_int, [ctypes.c_int]),
    "SDL_JoystickGetDeviceInstanceID": (ctypes.c_int32, [ctypes.c_int]),
    "SDL_JoystickNameForIndex": (ctypes.c_char_p, [ctypes.c_int]),
    "SDL_JoystickGetDeviceGUID": (JoystickGUID, [ctypes.c_int]),
    "SDL_JoystickGetGUIDString": (None, [JoystickGUID, ctypes.c_char_p, ctypes.c_int]),
    "SDL_IsGameController": (ctypes.c_int, [ctypes.c_int]),
    "SDL_JoystickOpen": (ctypes.c_void_p, [ctypes.c_int]),
    "SDL_JoystickClose": (None, [ctypes.c_void_p]),
    "SDL_JoystickInstanceID": (ctypes.c_int32, [ctypes.c_void_p]),
    "SDL_JoystickSetVirtualAxis": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]),
    "SDL_JoystickSetVirtualButton": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8],
    ),
}


# Newer than the oldest SDL that pygame 2.5 bundles: used only where the library has them.
_OPTIONAL_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "SDL_JoystickPathForIndex": (ctypes.c_char_p, [ctypes.c_int]),  # SDL 2.24
}


class SDL:
    """The few SDL functions coplay calls directly, typed."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.path = path
        self._lib = lib
        for name, (restype, argtypes) in _PROTOTYPES.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        for name, (restype, argtypes) in _OPTIONAL_PROTOTYPES.items():
            function = getattr(lib, name, None)
            if function is not None:
                function.restype = restype
                function.argtypes = argtypes
        self._path_for_index = getattr(lib, "SDL_JoystickPathForIndex", None)

    def error(self) -> str:
        raw: bytes | None = self._lib.SDL_GetError()
        return raw.decode("utf-8", "replace") if raw else ""

    def device_name(self, index: int) -> str:
        raw: bytes | None = self._lib.SDL_JoystickNameForIndex(index)
        return raw.decode("utf-8", "replace") if raw else ""

    def device_guid(self, index: int) -> str:
        buffer = ctypes.create_string_buffer(33)
        self._lib.SDL_JoystickGetGUIDString(self._lib.SDL_JoystickGetDeviceGUID(index), buffer, 33)
        return buffer.value.decode("ascii", "replace")

    def device_path(self, index: int) -> str | None:
        """The device node SDL reads joystick ``index`` from (``/dev/input/eventN``), if any."""
        if self._path_for_index is None:
            return None
        raw: bytes | None = self._path_for_index(index)
        return raw.decode("utf-8", "replace") if raw else None

    def __getattr__(self, name: str) -> Any:
        if name not in _PROTOTYPES:
            raise AttributeError(name)
        return getattr(self._lib, name)


def loaded_sdl_path(maps: Path = Path("/proc/self/maps")) -> str | None:
    """The libSDL2 file mapped into this process (pygame's), or None (not Linux, or not loaded)."""
    try:
        text = maps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and Path(parts[5]).name.startswith("libSDL2-2"):
            return parts[5]
    return None


def bundled_sdl_path(platform: str, package_dir: Path) -> str | None:
    """The libSDL2 a pygame wheel for ``platform`` ships beside ``package_dir`` (``pygame/``).

    Windows wheels put ``SDL2.dll`` in the package directory, macOS wheels
    ``.dylibs/libSDL2-2.0.0.dylib`` inside it (delocate), manylinux wheels
    ``pygame.libs/libSDL2-2-<hash>.0.so.0.<version>`` beside it (auditwheel).
    """
    if platform == "win32":
        found = [package_dir / "SDL2.dll"]
    elif platform == "darwin":
        found = sorted((package_dir / ".dylibs").glob("libSDL2-*.dylib"))
    else:
        found = sorted((package_dir.parent / "pygame.libs").glob("libSDL2-2*.so*"))
    return next((str(path) for path in found if path.is_file()), None)


def find_sdl(
    platform: str,
    package_dir: Path,
    *,
    maps: Path = Path("/proc/self/maps"),
    find_library: Callable[[str], str | None] = ctypes.util.find_library,
) -> str | None:
    """The libSDL2 pygame uses: the one mapped here (Linux), its wheel's, or the system's."""
    if platform.startswith("linux"):
        mapped = loaded_sdl_path(maps)
        if mapped is not None:
            return mapped
    # not mapped yet, or no /proc: the wheel's own copy; else a pygame built on a system SDL
    return bundled_sdl_path(platform, package_dir) or find_library("SDL2")


def load_sdl(pygame: ModuleType) -> SDL:
    """pygame's own libSDL2 through ctypes (DeviceError when it cannot be found)."""
    path = find_sdl(sys.platform, Path(str(pygame.__file__)).parent)
    if not path:
        raise DeviceError(
            "cannot find the libSDL2 pygame uses, so no virtual pad can be made; "
            "install pygame 2 from its wheel (pip install 'pygame>=2.6')"
        )
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise DeviceError(f"cannot load {path}: {exc}") from exc
    return SDL(lib, path)


def init_pygame(window: bool = False) -> ModuleType:
    """Import and initialise pygame for reading pads (no window unless ``window``)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if not window and sys.platform.startswith("linux"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        # imported here, not at the top: the environment above must be set first
        import pygame  # noqa: PLC0415
        from pygame._sdl2 import controller  # noqa: PLC0415

        pygame.display.init()
        pygame.joystick.init()
        controller.init()
    except (ImportError, RuntimeError) as exc:
        raise DeviceError(f"pygame cannot start: {exc}") from exc
    except Exception as exc:  # pygame.error
        raise DeviceError(f"SDL cannot start: {exc}") from exc
    return pygame
