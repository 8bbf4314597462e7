"""Finding pygame's own libSDL2 on Linux, Windows and macOS, in trees laid out as its wheels are."""

from __future__ import annotations

from pathlib import Path

import pytest

from guest.sdl import bundled_sdl_path, find_sdl

# What pygame 2.6.1's wheels hold (unzip -l): the SDL2 core library, and a sibling it must not take.
WHEELS = {
    "win32": ("pygame/SDL2.dll", "pygame/SDL2_image.dll"),
    "darwin": ("pygame/.dylibs/libSDL2-2.0.0.dylib", "pygame/.dylibs/libSDL2_image-2.0.0.dylib"),
    "linux": (
        "pygame.libs/libSDL2-2-1667c208.0.so.0.2800.4",
        "pygame.libs/libSDL2_image-2-6bbdaa8d.0.so.0.2.3",
    ),
}


def no_library(name: str) -> str | None:
    return None


def wheel_tree(root: Path, platform: str) -> Path:
    """site-packages as ``platform``'s wheel leaves it; the pygame package directory."""
    for name in WHEELS[platform]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF")
    (root / "pygame").mkdir(exist_ok=True)
    return root / "pygame"


@pytest.mark.parametrize("platform", sorted(WHEELS))
def test_the_wheels_own_sdl2_is_found_on_each_platform(tmp_path: Path, platform: str) -> None:
    package = wheel_tree(tmp_path, platform)
    found = find_sdl(platform, package, maps=tmp_path / "no-maps", find_library=no_library)
    assert found == str(tmp_path / WHEELS[platform][0])


@pytest.mark.parametrize("platform", sorted(WHEELS))
def test_another_platforms_layout_is_not_taken(tmp_path: Path, platform: str) -> None:
    """A Linux pygame.libs beside a Windows package dir is not a Windows SDL (and so on)."""
    for other in WHEELS:
        if other != platform:
            wheel_tree(tmp_path, other)
    assert bundled_sdl_path(platform, tmp_path / "pygame") is None


def test_on_linux_the_library_mapped_into_the_process_wins(tmp_path: Path) -> None:
    package = wheel_tree(tmp_path, "linux")
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r--p 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f02-7f03 r-xp 00001000 08:01 2 /opt/py/pygame.libs/libSDL2-2-aaaa.0.so.0.2800.4\n"
    )
    found = find_sdl("linux", package, maps=maps, find_library=no_library)
    assert found == "/opt/py/pygame.libs/libSDL2-2-aaaa.0.so.0.2800.4"


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_maps_are_read_only_on_linux(tmp_path: Path, platform: str) -> None:
    package = wheel_tree(tmp_path, platform)
    maps = tmp_path / "maps"
    maps.write_text("7f02-7f03 r-xp 00001000 08:01 2 /elsewhere/libSDL2-2.0.so.0\n")
    found = find_sdl(platform, package, maps=maps, find_library=no_library)
    assert found == str(tmp_path / WHEELS[platform][0])


@pytest.mark.parametrize("platform", [*sorted(WHEELS), "freebsd14"])
def test_a_pygame_without_bundled_sdl_asks_the_system_loader(tmp_path: Path, platform: str) -> None:
    """A distribution's pygame (linked against the system SDL): ctypes.util.find_library."""
    asked: list[str] = []

    def find_library(name: str) -> str | None:
        asked.append(name)
        return "libSDL2-2.0.so.0"

    (tmp_path / "pygame").mkdir()
    found = find_sdl(
        platform, tmp_path / "pygame", maps=tmp_path / "none", find_library=find_library
    )
    assert found == "libSDL2-2.0.so.0"
    assert asked == ["SDL2"]


def test_nothing_anywhere_is_none(tmp_path: Path) -> None:
    (tmp_path / "pygame").mkdir()
    assert (
        find_sdl("linux", tmp_path / "pygame", maps=tmp_path / "none", find_library=no_library)
        is None
    )
