"""Hostile or stalled input at the seat table and the intake: rules 2, 4 and 9 as pure logic."""

from __future__ import annotations

from collections.abc import Sequence

from host.effects import Apply, Effect
from host.intake import INTAKE_BURST, REJECT_ALLOWANCE, REJECT_GLOBAL_BURST, Intake
from host.lateness import LATE_RESYNC_S
from host.seats import SEQ_WINDOW, SeatTable
from relay.frames import Button, FrameCodec, Input, PadState, Ping, Reject, RejectCode, button_mask

WRAP = 1 << 32
A = PadState(buttons=button_mask(Button.A))
B = PadState(buttons=button_mask(Button.B))
Y = PadState(buttons=button_mask(Button.Y))


def stamp(sent: float, offset_us: int = 0) -> int:
    """A sender's 32-bit microsecond stamp for a frame sent at ``sent`` (host seconds)."""
    return (int(sent * 1e6) + offset_us) % WRAP


def table() -> SeatTable:
    return SeatTable([2], {}, stale_s=0.25, idle_s=60)


def applied(actions: Sequence[Effect]) -> list[Input]:
    return [a.frame for a in actions if isinstance(a, Apply)]


def test_a_forged_seq_jump_of_2_to_the_30_does_not_lock_the_player_out() -> None:
    t = table()
    t.on_frame("alice", Input.of(1, 100, stamp(0.0), A), 0.0)
    assert t.on_frame("alice", Input.of(1, 100 + (1 << 30), stamp(0.01), B), 0.01) == ()
    assert applied(t.on_frame("alice", Input.of(1, 101, stamp(0.02), Y), 0.02))
    assert t.drops()["old_seq"] == 1


def test_a_forged_jump_inside_the_window_heals_within_stale_ms() -> None:
    """The player's frames look old after a forged seq + 60000; after stale_ms they count."""
    t = table()
    t.on_frame("alice", Input.of(1, 100, stamp(0.0), A), 0.0)
    assert applied(t.on_frame("alice", Input.of(1, 100 + SEQ_WINDOW - 10, stamp(0.01), B), 0.01))
    now, seq, first = 0.01, 101, None
    while first is None and now < 1.0:
        now += 0.01
        seq += 1
        if applied(t.on_frame("alice", Input.of(1, seq, stamp(now), A), now)):
            first = now
    assert first is not None and first - 0.01 <= 0.25 + 0.011


def test_after_a_host_stall_old_frames_are_dropped_and_the_newest_state_applies() -> None:
    """Rule 9: 5 s of frames arriving at once: only those within stale_ms are applied."""
    t = table()
    offset = 123_456_789  # another machine's clock: only the best delay matters
    seq = 1
    for i in range(10):  # 10 frames on time, 10 ms apart
        sent = i * 0.01
        assert applied(t.on_frame("alice", Input.of(1, seq, stamp(sent, offset), A), sent))
        seq += 1
    resumed = 5.1  # the host was stopped from 0.1 s to 5.1 s; the guest kept sending
    backlog: list[Input] = []
    for i in range(500):
        sent = 0.1 + i * 0.01
        state = B if i % 2 else A  # presses and releases the pad must never replay
        backlog.append(Input.of(1, seq, stamp(sent, offset), Y if i == 499 else state))
        seq += 1
    got: list[Input] = []
    for k, frame in enumerate(backlog):
        got += applied(t.on_frame("alice", frame, resumed + k * 1e-5))
    sent_at = [(f.t - offset) % WRAP / 1e6 for f in got]
    assert got and min(sent_at) >= resumed - 0.25 - 0.01
    assert got[-1].state == Y
    assert t.drops()["late"] == len(backlog) - len(got)


def test_clock_drift_between_machines_never_makes_fresh_frames_late() -> None:
    """A sender clock 300 ppm slow: the delay grows 0.3 ms a second, for an hour."""
    t = table()
    lost = 0
    for i in range(3600):
        now = float(i)
        sent_clock = stamp(now * (1 - 300e-6), 42)
        lost += not applied(t.on_frame("alice", Input.of(1, i + 1, sent_clock, A), now))
    assert lost == 0


def test_a_forged_stamp_cannot_make_every_later_frame_late() -> None:
    t = table()
    t.on_frame("alice", Input.of(1, 1, stamp(0.0), A), 0.0)
    t.on_frame("alice", Input.of(1, 2, stamp(0.01, 10**9), B), 0.01)  # 1000 s "early"
    now, seq, back = 0.01, 2, None
    while back is None and now < 3.0:
        now += 0.01
        seq += 1
        if applied(t.on_frame("alice", Input.of(1, seq, stamp(now), A), now)):
            back = now
    assert back is not None and back <= 0.02 + LATE_RESYNC_S + 0.02


def test_one_users_flood_is_dropped_before_another_users_frames() -> None:
    intake = Intake()
    now = 0.0
    for _ in range(20_000):  # 20k frames in 0.2 s from mallory
        now += 1e-5
        intake.admit("mallory", 30, now)
    assert intake.counts()["over_budget"] >= 20_000 - INTAKE_BURST - 0.2 * 2500 - 1
    assert intake.admit("alice", 30, now)


def test_reject_bytes_out_never_exceed_frame_bytes_in_when_the_epoch_changes_every_frame() -> None:
    """Rule 2: a user who is not allowed, a new epoch on every Ping, 5000 Pings in 5 s."""
    t = SeatTable([2], {"alice": None}, stale_s=0.25, idle_s=60)
    intake = Intake()
    codec = FrameCodec()
    bytes_in = bytes_out = 0
    for i in range(5000):
        now = i * 0.001
        payload = codec.encode(Ping(i + 1, 0))
        bytes_in += len(payload)
        assert intake.admit("mallory", len(payload), now)
        for action in t.on_frame("mallory", codec.decode(payload), now):  # type: ignore[arg-type]
            frame = getattr(action, "frame", None)
            assert isinstance(frame, Reject) and frame.code == RejectCode.NOT_ALLOWED
            size = len(codec.encode(frame))
            if intake.may_reject("mallory", size, now):
                bytes_out += size
    assert 1 <= intake.counts()["rejects_sent"] <= 6  # one a second
    assert bytes_out <= bytes_in
    assert t.drops()["not_allowed"] == 5000


def test_the_first_reject_goes_out_at_once_and_the_global_cap_holds_for_many_users() -> None:
    intake = Intake()
    assert intake.may_reject("bob", REJECT_ALLOWANCE, 0.0)  # a lone Hello is answered
    sent = sum(intake.may_reject(f"user{i}", 60, 0.001) for i in range(500))
    assert sent <= REJECT_GLOBAL_BURST


def test_slow_epoch_changes_earn_no_more_reject_bytes_than_they_send() -> None:
    """One Ping a second, each with a new epoch: the Rejects are paid for by bytes in."""
    t = SeatTable([2], {"alice": None}, stale_s=0.25, idle_s=60)
    intake = Intake()
    codec = FrameCodec()
    bytes_in = bytes_out = 0
    for i in range(100):
        now = i * 1.05
        payload = codec.encode(Ping(i + 1, 0))
        bytes_in += len(payload)
        intake.admit("mallory", len(payload), now)
        for action in t.on_frame("mallory", codec.decode(payload), now):  # type: ignore[arg-type]
            size = len(codec.encode(action.frame))  # type: ignore[union-attr]
            if intake.may_reject("mallory", size, now):
                bytes_out += size
    assert intake.counts()["rejects_sent"] >= 2
    assert bytes_out <= bytes_in + REJECT_ALLOWANCE


def test_a_stall_earns_no_drift_slack() -> None:
    """After 5 s without frames, a frame 251 ms old is still late (drift counts 1 s at most)."""
    t = table()
    t.on_frame("alice", Input.of(1, 1, stamp(0.0), A), 0.0)
    assert t.on_frame("alice", Input.of(1, 2, stamp(5.0 - 0.251), B), 5.0) == ()
    assert t.drops()["late"] == 1
