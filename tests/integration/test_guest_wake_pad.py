"""A pad change wakes the guest at once, through SDL: the virtual pad here, a uinput pad where
``/dev/uinput`` is writable (the real evdev node SDL reads, found with SDL_JoystickPathForIndex).

The loop under test has every timer 100 s away (tests/support/guest_loop.py): a
frame within the wait was sent because the pad's descriptor turned readable, not
because a poll came round.
"""

from __future__ import annotations

import time
from types import ModuleType

import pytest

from guest.devices import Selection, list_devices
from guest.pad import PygamePadSource
from guest.sdl import SDL
from guest.virtual import NAME, VirtualPad
from guest.wake import NodeWaker, Waiter
from host.sinks import xpad
from host.sinks.base import FrameMeta
from host.sinks.uinput import UInputSink, uinput_fix
from relay.frames import NEUTRAL, Button, button_mask
from tests.support.guest_loop import WAIT, running_loop

A = button_mask(Button.A)


def test_a_virtual_pad_change_makes_its_waker_readable_and_poll_reads_it(
    sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad
) -> None:
    pygame, sdl = sdl_pair
    source = PygamePadSource(pygame, sdl, Selection("name", NAME), wakers=lambda i: pad.listen())
    try:
        waker = source.waker
        assert waker is not None
        source.poll()
        waiter = Waiter()
        waiter.watch([waker.fileno()])
        assert waiter.wait(0) == []  # a resting pad wakes nobody
        pad.set_button(Button.A, True)
        assert waiter.wait(WAIT) == [waker.fileno()]
        assert [s.buttons for s in source.poll()] == [A]
        assert waiter.wait(0) == []  # the poll drained it
    finally:
        source.close()


def test_the_loop_sends_a_virtual_pad_press_without_waiting_for_a_poll(
    sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad
) -> None:
    pygame, sdl = sdl_pair
    source = PygamePadSource(pygame, sdl, Selection("name", NAME), wakers=lambda i: pad.listen())
    try:
        with running_loop(source) as (loop, published):
            published.wait(1)  # the first keyframe
            woken = loop.wakeups
            pad.set_state(NEUTRAL._replace(buttons=A, lx=-1000))
            got = published.wait(2)[1]
            assert (got.buttons, got.lx) == (A, -1000)
            assert loop.wakeups - woken <= 3
    finally:
        source.close()


def test_a_pad_without_a_node_has_no_waker_and_is_polled(
    sdl_pair: tuple[ModuleType, SDL], pad: VirtualPad
) -> None:
    """SDL reports no device path for a virtual pad: the default waker gives up, the loop polls."""
    pygame, sdl = sdl_pair
    source = PygamePadSource(pygame, sdl, Selection("name", NAME))
    try:
        assert source.controller_name == NAME
        assert source.waker is None
    finally:
        source.close()


# ---------------------------------------------------------------- a real evdev node (uinput)


@pytest.mark.uinput
@pytest.mark.skipif(uinput_fix() is not None, reason=str(uinput_fix()))
def test_a_uinput_pad_press_wakes_the_loop_through_its_evdev_node(
    sdl_pair: tuple[ModuleType, SDL],
) -> None:
    """The host's own uinput pad, read by SDL as a real controller: press -> frame, no poll."""
    pygame, sdl = sdl_pair
    seat = 3
    sink = UInputSink(500)
    sink.open(seat, lambda seat, rumble: None)
    source = None
    try:
        index = _sdl_index(pygame, sdl, xpad.pad_name(seat))
        source = PygamePadSource(pygame, sdl, Selection("index", str(index)))
        assert isinstance(source.waker, NodeWaker), "no evdev node for the pad"
        assert source.waker.path == sdl.device_path(index)
        with running_loop(source) as (loop, published):
            published.wait(1)
            woken = loop.wakeups
            sink.apply(seat, NEUTRAL._replace(buttons=A), FrameMeta("alice", 1, 1, 0, 0, None))
            got = published.wait(2)[-1]
            assert got.buttons & A
            assert loop.wakeups - woken <= 3
    finally:
        if source is not None:
            source.close()
        sink.close()


def _sdl_index(pygame: ModuleType, sdl: SDL, name: str, timeout: float = WAIT) -> int:
    """The SDL index of the evdev device called ``name`` once SDL has seen it appear."""
    evdev = pytest.importorskip("evdev")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = {path for path in evdev.list_devices() if evdev.InputDevice(path).name == name}
        pygame.event.get()
        for device in list_devices(sdl):
            if device.is_controller and sdl.device_path(device.index) in nodes:
                return device.index
        time.sleep(0.05)  # udev and SDL's hot-plug scan are asynchronous: nothing to await
    raise TimeoutError(f"SDL never showed the uinput pad {name!r}")
