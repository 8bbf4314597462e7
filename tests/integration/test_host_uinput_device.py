"""The real virtual pad through /dev/uinput: created as an Xbox 360 pad, states read back with
evdev, game rumble forwarded. Runs only where /dev/uinput is writable; skips (with the reason
and the fix) everywhere else."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator

import pytest

from host.sinks import xpad
from host.sinks.base import FrameMeta
from host.sinks.uinput import DEVNODE, UInputSink, uinput_fix
from relay.frames import Button, PadState, Rumble, button_mask

pytestmark = [
    pytest.mark.uinput,
    pytest.mark.skipif(uinput_fix(DEVNODE) is not None, reason=str(uinput_fix(DEVNODE))),
]

evdev = pytest.importorskip("evdev")
META = FrameMeta("alice", 1, 1, 0, 0, None)


def find_device(name: str, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in evdev.list_devices():
            try:
                device = evdev.InputDevice(path)
            except OSError:
                continue
            if device.name == name:
                return device
            device.close()
        time.sleep(0.05)  # udev creates the node asynchronously: nothing to await
    pytest.skip(f"{name} was created but no readable /dev/input/event* node shows it")


@pytest.fixture
def pad() -> Iterator[tuple[UInputSink, list[Rumble], threading.Condition]]:
    got: list[Rumble] = []
    cond = threading.Condition()

    def on_rumble(seat: int, frame: Rumble) -> None:
        with cond:
            got.append(frame)
            cond.notify_all()

    sink = UInputSink(rumble_cap_ms=1000, device_id="host-devtest")
    sink.open(7, on_rumble)
    yield sink, got, cond
    sink.close()


def read_until(device, wanted: tuple[int, int, int], timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([device.fd], [], [], 0.2)
        if ready:
            for event in device.read():
                if (event.type, event.code, event.value) == wanted:
                    return
    raise AssertionError(f"never read {wanted}")


def test_pad_is_an_x360_controller_and_states_read_back(pad) -> None:  # type: ignore[no-untyped-def]
    sink, _, _ = pad
    device = find_device("coplay P7")
    try:
        info = device.info
        assert (info.vendor, info.product, info.bustype) == (0x045E, 0x028E, xpad.BUS_USB)
        assert device.phys == xpad.pad_phys("host-devtest", 7)  # stable across restarts
        caps = device.capabilities(absinfo=True)
        absinfo = dict(caps[xpad.EV_ABS])
        assert (absinfo[xpad.ABS_X].fuzz, absinfo[xpad.ABS_X].flat) == (16, 128)
        assert absinfo[xpad.ABS_Z].max == 255
        assert xpad.FF_RUMBLE in caps[xpad.EV_FF]
        sink.apply(7, PadState(buttons=button_mask(Button.X, Button.DPAD_UP), rt=32767), META)
        read_until(device, (xpad.EV_KEY, xpad.BTN_NORTH, 1))
        sink.neutral(7, "stale", META)
        read_until(device, (xpad.EV_KEY, xpad.BTN_NORTH, 0))
    finally:
        device.close()


def test_game_rumble_is_forwarded_with_capped_duration(pad) -> None:  # type: ignore[no-untyped-def]
    _, got, cond = pad
    device = find_device("coplay P7")
    try:
        from evdev import ecodes, ff

        effect = ff.Effect(
            ecodes.FF_RUMBLE, -1, 0, ff.Trigger(0, 0), ff.Replay(0, 0),
            ff.EffectType(ff_rumble_effect=ff.Rumble(strong_magnitude=0x8000, weak_magnitude=0x10)),
        )  # fmt: skip
        effect_id = device.upload_effect(effect)
        device.write(ecodes.EV_FF, effect_id, 1)
        with cond:
            assert cond.wait_for(lambda: bool(got), 5)
        assert got[0] == Rumble(0x8000, 0x10, 1000)
        device.write(ecodes.EV_FF, effect_id, 0)
        with cond:
            assert cond.wait_for(lambda: len(got) >= 2, 5)
        assert got[-1] == Rumble(0, 0, 0)
        device.erase_effect(effect_id)
    finally:
        device.close()
    assert os.path.exists(DEVNODE)
