"""The SDL virtual pad read back through the real pygame GameController path, in this process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from guest.devices import Selection, list_devices
from guest.pad import PygamePadSource
from guest.padmath import PadAxis
from guest.sdl import SDL, loaded_sdl_path
from guest.virtual import NAME, RumbleEvent, VirtualPad
from relay.frames import NEUTRAL, Button, PadState, button_mask
from tests.support.guest_proc import HEADLESS, ROOT

A = button_mask(Button.A)


@pytest.fixture
def source(sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad) -> Iterator[PygamePadSource]:
    pygame, sdl = sdl_pair
    made = PygamePadSource(pygame, sdl, Selection("name", NAME))
    made.poll()
    yield made
    made.close()


def poll_until(
    source: PygamePadSource, predicate: Callable[[list[PadState]], bool], timeout: float = 5.0
) -> list[PadState]:
    """Poll (as the guest loop does) until the states seen so far satisfy ``predicate``."""
    seen: list[PadState] = []
    deadline = time.monotonic() + timeout
    while not predicate(seen):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not seen in {timeout}s: {seen}")
        seen += source.poll()
        time.sleep(0.002)
    return seen


def test_the_library_is_the_one_pygame_loaded(sdl_pair: tuple[ModuleType, SDL]) -> None:
    _, sdl = sdl_pair
    assert sdl.path == loaded_sdl_path()
    assert "pygame.libs" in sdl.path or "libSDL2" in sdl.path


def test_virtual_pad_is_a_game_controller_with_sdls_own_mapping(
    sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad
) -> None:
    pygame, sdl = sdl_pair
    pygame.event.get()
    devices = [d for d in list_devices(sdl) if d.name == NAME]
    assert len(devices) == 1
    assert devices[0].is_controller and devices[0].virtual
    controller = pygame._sdl2.controller.Controller(devices[0].index)
    mapping = controller.get_mapping()
    controller.quit()
    assert (mapping["a"], mapping["y"], mapping["dpleft"]) == ("b0", "b3", "b13")
    assert (mapping["leftx"], mapping["righttrigger"]) == ("a0", "a5")


def test_press_a_reaches_the_source_as_bit_0(pad: VirtualPad, source: PygamePadSource) -> None:
    assert source.controller_name == NAME
    pad.set_button(Button.A, True)
    seen = poll_until(source, lambda s: bool(s) and s[-1].buttons == A)
    assert seen[-1] == NEUTRAL._replace(buttons=A)
    pad.set_button(Button.A, False)
    assert poll_until(source, lambda s: bool(s) and s[-1] == NEUTRAL)[-1] == NEUTRAL


def test_a_tap_inside_one_batch_gives_a_press_state_and_a_release_state(
    sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad, source: PygamePadSource
) -> None:
    pygame, _ = sdl_pair
    pad.set_button(Button.X, True)
    pygame.event.pump()  # SDL sees the press and queues its event...
    pad.set_button(Button.X, False)
    pygame.event.pump()  # ...and the release, before the guest drains the queue once
    states = source.poll()
    assert [s.buttons for s in states] == [button_mask(Button.X), 0]


def test_sticks_and_triggers_read_back_exactly(pad: VirtualPad, source: PygamePadSource) -> None:
    want = PadState(
        buttons=button_mask(Button.DPAD_UP, Button.RIGHTSHOULDER),
        lx=-32768,
        ly=12345,
        rx=32767,
        ry=-1,
        lt=32767,
        rt=1234,
    )
    pad.set_state(want)
    seen = poll_until(source, lambda s: bool(s) and s[-1] == want)
    assert seen[-1] == want
    assert source.state == want


def test_unplug_sends_neutral_and_replug_resumes(pad: VirtualPad, source: PygamePadSource) -> None:
    pad.set_button(Button.B, True)
    pad.set_axis(PadAxis.LEFTX, 20000)
    poll_until(source, lambda s: bool(s) and s[-1].buttons == button_mask(Button.B))
    pad.detach()
    seen = poll_until(source, lambda s: bool(s) and s[-1] == NEUTRAL)
    assert seen[-1] == NEUTRAL
    assert source.controller_name is None
    assert source.poll() == []
    pad.attach()
    poll_until(source, lambda s: source.controller_name == NAME)
    pad.set_button(Button.Y, True)
    seen = poll_until(source, lambda s: bool(s) and s[-1].buttons == button_mask(Button.Y))
    assert seen[-1] == NEUTRAL._replace(buttons=button_mask(Button.Y))


@pytest.fixture
def rumbling(sdl_pair: tuple[ModuleType, SDL]) -> Iterator[tuple[VirtualPad, list[RumbleEvent]]]:
    """A virtual pad that records every call of its rumble callback (as the guest logs them)."""
    pygame, sdl = sdl_pair
    rumbles: list[RumbleEvent] = []
    virtual = VirtualPad(sdl, on_rumble=rumbles.append)
    virtual.attach()
    yield virtual, rumbles
    virtual.detach()
    with contextlib.suppress(SystemError):  # pygame's hiccup when a device comes and goes
        pygame.event.get()


def test_rumble_reaches_the_virtual_pads_callback(
    sdl_pair: tuple[ModuleType, SDL], rumbling: tuple[VirtualPad, list[RumbleEvent]]
) -> None:
    pygame, sdl = sdl_pair
    _, rumbles = rumbling
    source = PygamePadSource(pygame, sdl, Selection("name", NAME))
    source.poll()
    try:
        assert source.rumble(1000, 40000, 80)
        assert [(r.low, r.high) for r in rumbles] == [(1000, 40000)]
        deadline = time.monotonic() + 5
        while not any((r.low, r.high) == (0, 0) for r in rumbles):  # SDL stops it when due
            assert time.monotonic() < deadline, rumbles
            pygame.event.pump()
            time.sleep(0.01)
        assert rumbles[-1].at - rumbles[0].at >= 0.07
    finally:
        source.close()


def test_an_exception_in_the_rumble_callback_is_counted_not_lost(
    sdl_pair: tuple[ModuleType, SDL],
) -> None:
    """SDL's rumble callback fails: the pad says it cannot rumble, and the error is counted."""
    pygame, sdl = sdl_pair

    def broken(event: RumbleEvent) -> None:
        raise RuntimeError("a bug in the rumble handler")

    virtual = VirtualPad(sdl, on_rumble=broken)
    virtual.attach()
    source = PygamePadSource(pygame, sdl, Selection("name", NAME))
    source.poll()
    try:
        assert not source.rumble(1000, 40000, 80)  # SDL hears -1 from the callback
        assert virtual.errors.count == 1
    finally:
        source.close()
        virtual.detach()
        with contextlib.suppress(SystemError):
            pygame.event.get()


@pytest.mark.parametrize("cap_ms", [50, 600])
def test_rumble_duration_is_capped(
    sdl_pair: tuple[ModuleType, SDL], rumbling: tuple[VirtualPad, list[RumbleEvent]], cap_ms: int
) -> None:
    """A 60 s rumble stops after the configured cap (neither the default 2 s nor never)."""
    pygame, sdl = sdl_pair
    _, rumbles = rumbling
    capped = PygamePadSource(pygame, sdl, Selection("name", NAME), rumble_cap_ms=cap_ms)
    capped.poll()
    try:
        assert capped.rumble(65535, 65535, 60000)
        deadline = time.monotonic() + 5
        while len(rumbles) < 2:
            assert time.monotonic() < deadline
            pygame.event.pump()
            time.sleep(0.01)  # SDL ends the effect from its own pump: nothing to await
        lasted = rumbles[1].at - rumbles[0].at
        assert cap_ms / 1000 * 0.8 <= lasted < cap_ms / 1000 + 0.5
        assert (rumbles[0].low, rumbles[0].high) == (65535, 65535)
        assert (rumbles[1].low, rumbles[1].high) == (0, 0)
    finally:
        capped.close()


def test_a_pad_that_comes_and_goes_between_polls_does_not_break_the_source(
    pad: VirtualPad, source: PygamePadSource
) -> None:
    """pygame fails a batch holding both events of a short-lived device; the source recovers."""
    pad.set_button(Button.A, True)
    poll_until(source, lambda s: bool(s) and s[-1].buttons == A)
    pad.detach()
    pad.attach()  # a new instance, added and removed before anything is drained
    pad.detach()
    seen = poll_until(source, lambda s: bool(s) and s[-1] == NEUTRAL)
    assert seen[-1] == NEUTRAL
    assert source.controller_name is None
    pad.attach()
    poll_until(source, lambda s: source.controller_name == NAME)
    pad.set_button(Button.B, True)
    poll_until(source, lambda s: bool(s) and s[-1].buttons == button_mask(Button.B))


def test_deadzone_when_asked(
    sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad, source: PygamePadSource
) -> None:
    pygame, sdl = sdl_pair
    zoned = PygamePadSource(pygame, sdl, Selection("name", NAME), deadzone=0.2)
    try:
        pad.set_axis(PadAxis.LEFTX, 3000)
        pad.set_axis(PadAxis.RIGHTY, 32767)
        seen = poll_until(zoned, lambda s: bool(s) and s[-1].ry == 32767)
        assert seen[-1].lx == 0
    finally:
        zoned.close()


def test_selection_by_guid_and_index(sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad) -> None:
    pygame, sdl = sdl_pair
    pygame.event.get()
    device = next(d for d in list_devices(sdl) if d.name == NAME)
    for selection in (Selection.parse(device.guid), Selection.parse(str(device.index))):
        chosen = PygamePadSource(pygame, sdl, selection)
        assert chosen.controller_name == NAME
        chosen.close()
    nothing = PygamePadSource(pygame, sdl, Selection.parse("no such pad"))
    assert nothing.controller_name is None
    assert nothing.state == NEUTRAL
    nothing.close()


def test_window_draws_the_pad_state(sdl_pair: tuple[ModuleType, SDL]) -> None:
    """--window renders with the dummy video driver; a held A is drawn lit."""
    from guest.status import StatusView
    from guest.window import BUTTON_SPOTS, LIT, PadWindow

    pygame, _ = sdl_pair
    window = PadWindow(pygame)
    try:
        status = StatusView("connected", 2, True, 3.0, 0.5, 60.0, NAME)
        window.draw(status, NEUTRAL._replace(buttons=A), [1.0, 3.0, 2.0])
        surface = pygame.display.get_surface()
        (x, y), _ = BUTTON_SPOTS[Button.A]
        assert tuple(surface.get_at((x, y)))[:3] == LIT
        (x, y), _ = BUTTON_SPOTS[Button.B]
        assert tuple(surface.get_at((x, y)))[:3] != LIT
    finally:
        window.close()
        pygame.display.init()  # the other tests' event queue needs it


def test_devices_command_lists_the_virtual_pad() -> None:
    env = {**os.environ, **HEADLESS, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "guest.cli", "devices", "--virtual"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert header.split() == ["INDEX", "NAME", "GUID", "MAPPING"]
    assert NAME in row
    assert row.split()[-1] == "yes"
    assert Path(sys.executable).exists()
