"""The Xbox 360 (xpad) mapping of the uinput sink, without a device: codes, values, rumble."""

from __future__ import annotations

import os
import threading

import pytest
from evdev import ecodes

from host.faults import Faults
from host.sinks import xpad
from host.sinks.base import FrameMeta
from host.sinks.uinput import UInputSink, Upload, pack_events, uinput_fix, unpack_events
from relay.frames import NEUTRAL, Button, PadState, Rumble, button_mask

KEY, ABS = xpad.EV_KEY, xpad.EV_ABS

EXPECTED_BUTTONS = {
    Button.A: ecodes.BTN_SOUTH,
    Button.B: ecodes.BTN_EAST,
    Button.X: ecodes.BTN_NORTH,
    Button.Y: ecodes.BTN_WEST,
    Button.BACK: ecodes.BTN_SELECT,
    Button.GUIDE: ecodes.BTN_MODE,
    Button.START: ecodes.BTN_START,
    Button.LEFTSTICK: ecodes.BTN_THUMBL,
    Button.RIGHTSTICK: ecodes.BTN_THUMBR,
    Button.LEFTSHOULDER: ecodes.BTN_TL,
    Button.RIGHTSHOULDER: ecodes.BTN_TR,
}


def values(state: PadState) -> dict[tuple[int, int], int]:
    return {(t, c): v for t, c, v in xpad.state_events(state)}


def test_constants_match_the_kernel_abi() -> None:
    names = (
        "EV_SYN EV_KEY EV_ABS EV_FF EV_UINPUT SYN_REPORT UI_FF_UPLOAD UI_FF_ERASE BUS_USB "
        "BTN_SOUTH BTN_EAST BTN_NORTH BTN_WEST BTN_TL BTN_TR BTN_SELECT BTN_START BTN_MODE "
        "BTN_THUMBL BTN_THUMBR ABS_X ABS_Y ABS_Z ABS_RX ABS_RY ABS_RZ ABS_HAT0X ABS_HAT0Y "
        "FF_RUMBLE FF_GAIN"
    )
    for name in names.split():
        assert getattr(xpad, name) == getattr(ecodes, name), name


def test_the_pad_is_an_xbox_360_controller() -> None:
    assert (xpad.VENDOR, xpad.PRODUCT, xpad.BUS_USB) == (0x045E, 0x028E, ecodes.BUS_USB)
    assert xpad.pad_name(2) == "coplay P2"
    assert sorted(xpad.CAPABILITIES[KEY]) == sorted(EXPECTED_BUTTONS.values())  # type: ignore[type-var]
    absinfo = dict(xpad.CAPABILITIES[ABS])  # type: ignore[arg-type]
    for code in (ecodes.ABS_X, ecodes.ABS_Y, ecodes.ABS_RX, ecodes.ABS_RY):
        assert absinfo[code] == (0, -32768, 32767, 16, 128, 0)
    for code in (ecodes.ABS_Z, ecodes.ABS_RZ):
        assert (absinfo[code].min, absinfo[code].max) == (0, 255)
    for code in (ecodes.ABS_HAT0X, ecodes.ABS_HAT0Y):
        assert (absinfo[code].min, absinfo[code].max) == (-1, 1)
    assert xpad.CAPABILITIES[xpad.EV_FF] == [ecodes.FF_RUMBLE]
    assert ecodes.BTN_DPAD_UP not in xpad.CAPABILITIES[KEY]  # the D-pad is a hat


@pytest.mark.parametrize("button", list(EXPECTED_BUTTONS))
def test_each_button_bit_presses_its_code(button: Button) -> None:
    got = values(PadState(buttons=button_mask(button)))
    for other, code in EXPECTED_BUTTONS.items():
        assert got[KEY, code] == (1 if other == button else 0), other.name
    assert got[ABS, ecodes.ABS_HAT0X] == got[ABS, ecodes.ABS_HAT0Y] == 0


@pytest.mark.parametrize(
    ("held", "hat"),
    [
        ((Button.DPAD_UP,), (0, -1)),
        ((Button.DPAD_DOWN,), (0, 1)),
        ((Button.DPAD_LEFT,), (-1, 0)),
        ((Button.DPAD_RIGHT,), (1, 0)),
        ((Button.DPAD_UP, Button.DPAD_RIGHT), (1, -1)),
        ((Button.DPAD_DOWN, Button.DPAD_LEFT), (-1, 1)),
        ((Button.DPAD_UP, Button.DPAD_DOWN), (0, 0)),
        ((Button.DPAD_LEFT, Button.DPAD_RIGHT), (0, 0)),
    ],
)
def test_dpad_bits_become_hat_values(held: tuple[Button, ...], hat: tuple[int, int]) -> None:
    got = values(PadState(buttons=button_mask(*held)))
    assert (got[ABS, ecodes.ABS_HAT0X], got[ABS, ecodes.ABS_HAT0Y]) == hat
    assert all(got[KEY, code] == 0 for code in EXPECTED_BUTTONS.values())


def test_buttons_a_360_pad_lacks_are_ignored() -> None:
    extra = button_mask(Button.MISC1, Button.PADDLE1, Button.PADDLE4, Button.TOUCHPAD)
    assert values(PadState(buttons=extra)) == values(NEUTRAL)


def test_sticks_pass_through_with_sdl_sign_convention() -> None:
    """SDL and xpad agree: +Y is down, so values are passed unchanged."""
    got = values(PadState(lx=-32768, ly=32767, rx=123, ry=-456))
    assert got[ABS, ecodes.ABS_X] == -32768
    assert got[ABS, ecodes.ABS_Y] == 32767  # stick pushed down
    assert got[ABS, ecodes.ABS_RX] == 123
    assert got[ABS, ecodes.ABS_RY] == -456


@pytest.mark.parametrize(
    ("sdl", "evdev_value"), [(0, 0), (1, 0), (64, 0), (65, 1), (16384, 128), (32767, 255)]
)
def test_triggers_scale_to_0_255(sdl: int, evdev_value: int) -> None:
    got = values(PadState(lt=sdl, rt=sdl))
    assert got[ABS, ecodes.ABS_Z] == got[ABS, ecodes.ABS_RZ] == evdev_value


def test_neutral_releases_everything() -> None:
    got = values(NEUTRAL)
    assert set(got.values()) == {0}
    assert len(got) == len(EXPECTED_BUTTONS) + 8
    held = PadState(button_mask(*EXPECTED_BUTTONS, Button.DPAD_UP), 1, 2, 3, 4, 32767, 32767)
    after = values(held) | {(t, c): v for t, c, v in xpad.neutral_events(held)}
    assert after == got


def test_diff_sends_only_what_changed() -> None:
    old = PadState(buttons=button_mask(Button.A), lx=100)
    new = PadState(buttons=button_mask(Button.B), lx=100, rt=32767)
    assert sorted(xpad.diff_events(old, new)) == sorted(
        [(KEY, ecodes.BTN_SOUTH, 0), (KEY, ecodes.BTN_EAST, 1), (ABS, ecodes.ABS_RZ, 255)]
    )
    assert xpad.diff_events(new, new) == []
    assert xpad.diff_events(None, NEUTRAL) == xpad.state_events(NEUTRAL)


def test_events_pack_as_input_event_records_with_syn() -> None:
    data = pack_events([(KEY, ecodes.BTN_SOUTH, 1)])
    assert unpack_events(data) == [(KEY, ecodes.BTN_SOUTH, 1), (0, 0, 0)]


# ------------------------------------------------------------------ rumble


@pytest.mark.parametrize("cap_ms", [1234, 2000, 7000])
def test_rumble_upload_then_play_is_forwarded_with_capped_duration(cap_ms: int) -> None:
    """The configured cap (not a built-in one) bounds every effect, forever-effects included."""
    r = xpad.RumbleMapper(cap_ms=cap_ms)
    assert r.upload(0, ecodes.FF_RUMBLE, strong=0xC000, weak=0x4000, length_ms=500) is None
    assert r.play(0, 1) == Rumble(0xC000, 0x4000, 500)  # strong = low-frequency motor
    assert r.upload(1, ecodes.FF_RUMBLE, 0xFFFF, 0xFFFF, length_ms=0) is None
    assert r.play(1, 1) == Rumble(0xFFFF, 0xFFFF, cap_ms)  # 0 = forever: capped
    assert r.upload(2, ecodes.FF_RUMBLE, 10, 20, length_ms=60000) is None
    assert r.play(2, 1) == Rumble(10, 20, cap_ms)
    assert r.upload(3, ecodes.FF_RUMBLE, 10, 20, length_ms=cap_ms - 1) is None
    assert r.play(3, 1) == Rumble(10, 20, cap_ms - 1)  # under the cap: as the game asked


def test_rumble_stop_and_erase() -> None:
    r = xpad.RumbleMapper(cap_ms=1000)
    r.upload(0, ecodes.FF_RUMBLE, 100, 200, 300)
    r.play(0, 1)
    assert r.play(0, 0) == Rumble(0, 0, 0)
    assert r.play(0, 0) is None  # already stopped
    r.play(0, 1)
    assert r.erase(0) == Rumble(0, 0, 0)
    assert r.play(0, 1) is None  # erased effects cannot play


def test_updating_a_playing_effect_sends_the_new_values() -> None:
    r = xpad.RumbleMapper(cap_ms=1000)
    r.upload(3, ecodes.FF_RUMBLE, 100, 200, 300)
    r.play(3, 1)
    assert r.upload(3, ecodes.FF_RUMBLE, 0, 0, 300) == Rumble(0, 0, 0)
    assert r.upload(3, ecodes.FF_RUMBLE, 500, 0, 300) == Rumble(500, 0, 300)


def test_gain_scales_and_other_effect_types_are_ignored() -> None:
    r = xpad.RumbleMapper(cap_ms=1000)
    r.event(ecodes.FF_GAIN, 0x7FFF)
    r.upload(0, ecodes.FF_RUMBLE, 0xFFFF, 0, 100)
    assert r.event(0, 1) == Rumble(0x7FFF, 0, 100)
    assert r.upload(1, ecodes.FF_PERIODIC, 1, 1, 1) is None


# ------------------------------------------------------------------ the sink, with a fake device


class FakePad:
    """A pipe stands in for the uinput fd: the test plays the kernel's part."""

    def __init__(self, seat: int) -> None:
        self.seat = seat
        self.written: list[bytes] = []
        self._r, self.kernel = os.pipe()
        self.uploads: dict[int, Upload] = {}
        self.erases: dict[int, int] = {}
        self.closed = False

    def fileno(self) -> int:
        return self._r

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def read(self) -> bytes:
        return os.read(self._r, 24 * 64)

    def upload(self, request_id: int) -> Upload:
        return self.uploads[request_id]

    def erase(self, request_id: int) -> int:
        return self.erases[request_id]

    def close(self) -> None:
        self.closed = True
        os.close(self._r)
        os.close(self.kernel)


def test_uinput_sink_writes_diffs_and_forwards_game_rumble() -> None:
    pads: dict[int, FakePad] = {}
    got: list[tuple[int, Rumble]] = []
    cond = threading.Condition()

    def on_rumble(seat: int, frame: Rumble) -> None:
        with cond:
            got.append((seat, frame))
            cond.notify_all()

    def factory(seat: int, phys: str) -> FakePad:
        pads[seat] = FakePad(seat)
        return pads[seat]

    sink = UInputSink(rumble_cap_ms=1500, pad_factory=factory)
    sink.open(2, on_rumble)
    sink.open(3, on_rumble)
    try:
        assert unpack_events(pads[2].written[0])[:-1] == xpad.state_events(NEUTRAL)
        meta = FrameMeta("alice", 1, 1, 0, 0, None)
        sink.apply(2, PadState(buttons=button_mask(Button.A)), meta)
        sink.apply(2, PadState(buttons=button_mask(Button.A)), meta)  # unchanged: no write
        sink.neutral(2, "stale", meta)
        assert [unpack_events(w) for w in pads[2].written[1:]] == [
            [(KEY, ecodes.BTN_SOUTH, 1), (0, 0, 0)],
            [(KEY, ecodes.BTN_SOUTH, 0), (0, 0, 0)],
        ]
        pad = pads[3]
        pad.uploads[7] = Upload(0, ecodes.FF_RUMBLE, 0x8000, 0x100, 0)
        os.write(
            pad.kernel,
            pack_events([(xpad.EV_UINPUT, xpad.UI_FF_UPLOAD, 7), (xpad.EV_FF, 0, 1)]),
        )
        with cond:
            assert cond.wait_for(lambda: len(got) == 1, 10)
        assert got == [(3, Rumble(0x8000, 0x100, 1500))]
        os.write(pad.kernel, pack_events([(xpad.EV_FF, 0, 0)]))
        with cond:
            assert cond.wait_for(lambda: len(got) == 2, 10)
        assert got[1] == (3, Rumble(0, 0, 0))
    finally:
        sink.close()
    assert pads[2].closed and pads[3].closed


class FailingOnce:
    """An on_rumble that raises on its first call and keeps the rest (awaitable)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: list[Rumble] = []

    def __call__(self, seat: int, frame: Rumble) -> None:
        with self.cond:
            self.calls.append(frame)
            self.cond.notify_all()
            first = len(self.calls) == 1
        if first:
            raise RuntimeError("the daemon's handler failed")

    def wait(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.calls) >= n, 10)


def test_an_exception_from_on_rumble_is_counted_and_the_reader_goes_on() -> None:
    """The force-feedback thread survives a callback that raises; the count is in Faults."""
    pad = FakePad(2)
    faults = Faults()
    on_rumble = FailingOnce()
    sink = UInputSink(rumble_cap_ms=1500, pad_factory=lambda seat, phys: pad, faults=faults)
    sink.open(2, on_rumble)
    try:
        pad.uploads[7] = Upload(0, ecodes.FF_RUMBLE, 0x8000, 0x100, 0)
        os.write(pad.kernel, pack_events([(xpad.EV_UINPUT, xpad.UI_FF_UPLOAD, 7)]))
        os.write(pad.kernel, pack_events([(xpad.EV_FF, 0, 1)]))
        on_rumble.wait(1)
        os.write(pad.kernel, pack_events([(xpad.EV_FF, 0, 0)]))  # after the failure
        on_rumble.wait(2)
    finally:
        sink.close()
    assert on_rumble.calls[1] == Rumble(0, 0, 0)
    assert faults.counts() == {"uinput_ff": 1}


def test_a_failed_write_is_resent_with_the_next_state() -> None:
    """A write the kernel refused is not taken as applied: the next diff still releases A."""
    pads: dict[int, FakePad] = {}

    def factory(seat: int, phys: str) -> FakePad:
        pads[seat] = FakePad(seat)
        return pads[seat]

    sink = UInputSink(rumble_cap_ms=1500, pad_factory=factory)
    sink.open(2, lambda seat, frame: None)
    try:
        pad = pads[2]
        meta = FrameMeta("alice", 1, 1, 0, 0, None)
        sink.apply(2, PadState(buttons=button_mask(Button.A)), meta)
        written = pad.write

        def refuse(data: bytes) -> None:
            raise OSError("EAGAIN")

        pad.write = refuse  # type: ignore[method-assign]
        with pytest.raises(OSError):  # the pad writer counts it and says so in status
            sink.apply(2, NEUTRAL, meta)  # the release is lost on the way
        pad.write = written  # type: ignore[method-assign]
        sink.apply(2, PadState(lx=100), meta)
        assert unpack_events(pad.written[-1]) == [
            (KEY, ecodes.BTN_SOUTH, 0),
            (ABS, ecodes.ABS_X, 100),
            (0, 0, 0),
        ]
    finally:
        sink.close()


def test_missing_uinput_names_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    problem = uinput_fix(str(tmp_path / "uinput"))
    assert problem is not None
    assert "modprobe uinput" in problem
    unwritable = tmp_path / "ro"
    unwritable.touch(0o400)
    if os.access(unwritable, os.W_OK):  # root can write anything
        return
    text = uinput_fix(str(unwritable))
    assert text is not None
    assert "60-coplay-uinput.rules" in text
    assert "coplay group" in text


def test_each_pad_has_a_phys_stable_per_host_and_seat() -> None:
    """Steam and games keep per-controller settings by phys: the same across host restarts."""
    seen: list[tuple[str, int, str]] = []

    def opened(device_id: str) -> None:
        def factory(seat: int, phys: str) -> FakePad:
            seen.append((device_id, seat, phys))
            return FakePad(seat)

        sink = UInputSink(1000, device_id, pad_factory=factory)
        sink.open(2, lambda seat, frame: None)
        sink.open(3, lambda seat, frame: None)
        sink.close()

    opened("host-1a2b")
    opened("host-1a2b")  # the same host, restarted
    opened("host-9f9f")  # another stream PC
    phys = [p for _, _, p in seen]
    assert phys[:2] == phys[2:4]  # stable across restarts
    assert len(set(phys[:2])) == 2  # one per seat
    assert not set(phys[4:]) & set(phys[:2])  # another host, other names
    assert all(len(p.encode()) <= xpad.PHYS_MAX for p in phys)
    long_id = "h" * 64
    assert xpad.pad_phys(long_id, 2) != xpad.pad_phys(long_id, 3)  # the seat survives the cut
