"""Sender timing: changes at once, keyframes on schedule, taps kept, nothing queued offline."""

from __future__ import annotations

import pytest

from guest.sender import Sender
from relay.frames import NEUTRAL, Button, FrameCodec, Input, PadState, button_mask

A = NEUTRAL._replace(buttons=button_mask(Button.A))
B = NEUTRAL._replace(buttons=button_mask(Button.B))


class Wire:
    """A fake publish that records decoded Input frames and can be taken offline."""

    def __init__(self) -> None:
        self.codec = FrameCodec()
        self.frames: list[Input] = []
        self.online = True

    def __call__(self, payload: bytes) -> bool:
        if not self.online:
            return False
        frame = self.codec.decode(payload)
        assert isinstance(frame, Input)
        self.frames.append(frame)
        return True

    @property
    def states(self) -> list[PadState]:
        return [f.state for f in self.frames]


def make(wire: Wire, rate_hz: float = 60, max_rate_hz: float = 500) -> Sender:
    stamps = iter(range(1000, 10**9, 7))
    return Sender(
        wire, epoch=77, rate_hz=rate_hz, max_rate_hz=max_rate_hz, stamp=lambda: next(stamps)
    )


def test_first_pump_sends_the_current_state_at_once() -> None:
    wire = Wire()
    sender = make(wire)
    assert sender.pump(0.0)
    assert wire.states == [NEUTRAL]
    assert (wire.frames[0].epoch, wire.frames[0].seq) == (77, 1)


def test_a_change_goes_out_at_once_not_at_the_next_keyframe() -> None:
    wire = Wire()
    sender = make(wire)
    sender.pump(0.0)
    sender.offer([A])
    assert sender.next_due() <= 0.002
    assert sender.pump(0.003)
    assert wire.states == [NEUTRAL, A]


def test_keyframes_follow_a_fixed_schedule_when_nothing_changes() -> None:
    wire = Wire()
    sender = make(wire, rate_hz=50)  # every 20 ms
    sender.pump(0.0)
    sent_at = []
    now = 0.0
    while now < 1.0:
        now = max(now, sender.next_due()) + 0.0015  # every wake-up a little late
        if sender.pump(now):
            sent_at.append(now)
    assert len(sent_at) == pytest.approx(50, abs=1)  # lateness does not pile up
    assert all(s == NEUTRAL for s in wire.states)


def test_a_very_late_wakeup_does_not_send_a_burst_of_keyframes() -> None:
    wire = Wire()
    sender = make(wire, rate_hz=100)
    sender.pump(0.0)
    assert sender.pump(1.0)
    assert not sender.pump(1.0001)
    assert sender.next_due() == pytest.approx(1.01)


def test_a_tap_within_one_batch_sends_press_and_release_even_when_throttled() -> None:
    wire = Wire()
    sender = make(wire, rate_hz=10, max_rate_hz=20)  # at most one change per 50 ms
    sender.pump(0.0)
    sender.offer([B])
    assert sender.pump(0.0)  # a change: the next one waits 50 ms
    sender.offer([A, NEUTRAL])
    assert not sender.pump(0.01)  # too soon after the last change: deferred, not dropped
    assert sender.waiting == 2
    assert sender.pump(0.05)
    assert not sender.pump(0.06)
    assert sender.pump(0.10)
    assert wire.states == [NEUTRAL, B, A, NEUTRAL]


def test_a_keyframe_never_delays_the_change_after_it() -> None:
    """The first press after a rest goes out at once, even right after a keyframe."""
    wire = Wire()
    sender = make(wire, rate_hz=60, max_rate_hz=500)
    sender.pump(0.0)
    assert sender.pump(1 / 60)  # a keyframe
    sender.offer([A])
    assert sender.next_due() <= 1 / 60 + 0.0001
    assert sender.pump(1 / 60 + 0.0001)
    assert wire.states == [NEUTRAL, NEUTRAL, A]


def test_stick_moves_waiting_behind_the_throttle_are_coalesced_but_buttons_are_not() -> None:
    wire = Wire()
    sender = make(wire, rate_hz=10, max_rate_hz=20)
    sender.pump(0.0)
    sender.offer([B])
    assert sender.pump(0.0)  # a change: the throttle runs from here
    moves = [NEUTRAL._replace(lx=v) for v in (100, 200, 300)]
    sender.offer(moves)
    sender.offer([A._replace(lx=300), A._replace(lx=400), NEUTRAL._replace(lx=500)])
    for t in (0.05, 0.101, 0.152):
        assert sender.pump(t)
    assert wire.states == [
        NEUTRAL,
        B,
        moves[-1],
        A._replace(lx=400),
        NEUTRAL._replace(lx=500),
    ]


def test_offering_an_unchanged_state_sends_nothing_extra() -> None:
    wire = Wire()
    sender = make(wire)
    sender.pump(0.0)
    sender.offer([NEUTRAL, NEUTRAL])
    assert sender.waiting == 0
    assert not sender.pump(0.001)


def test_seq_steps_by_one_and_the_epoch_stays() -> None:
    wire = Wire()
    sender = make(wire, rate_hz=100)
    now = 0.0
    for i in range(20):
        sender.offer([A if i % 3 else B])
        now += 0.01
        sender.pump(now)
    seqs = [f.seq for f in wire.frames]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {f.epoch for f in wire.frames} == {77}
    stamps = [f.t for f in wire.frames]
    assert stamps == sorted(stamps)


def test_seq_wraps_at_2_to_the_32() -> None:
    wire = Wire()
    sender = make(wire)
    sender.seq = 2**32 - 1
    sender.pump(0.0)
    assert wire.frames[0].seq == 0


def test_offline_frames_are_dropped_not_queued_and_resync_sends_the_current_state() -> None:
    wire = Wire()
    sender = make(wire, rate_hz=10)
    sender.pump(0.0)
    wire.online = False
    sender.offer([A])
    sender.pump(0.01)
    sender.offer([B])
    sender.pump(0.02)
    assert sender.dropped == 2
    assert wire.states == [NEUTRAL]
    wire.online = True
    sender.offer([A, NEUTRAL, B])  # stale edges from while offline
    sender.resync()
    assert sender.pump(0.021)
    assert wire.states == [NEUTRAL, B]  # only the current state, at once
    assert [f.seq for f in wire.frames] == [1, 2]  # seq counts frames that went out


def test_rates_are_checked() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        Sender(Wire(), epoch=1, rate_hz=100, max_rate_hz=50)
