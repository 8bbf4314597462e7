"""The seat table: host rules 2-6 as pure logic (no MQTT, no threads, time passed in)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from host.effects import Apply, Effect, Neutral, Reply, SeatChange
from host.seats import SeatTable
from relay.frames import (
    Button,
    Bye,
    Hello,
    HostState,
    Input,
    PadState,
    Ping,
    Pong,
    Reject,
    RejectCode,
    Welcome,
    button_mask,
)

A = PadState(buttons=button_mask(Button.A))


def inp(epoch: int, seq: int, state: PadState = A, t: int = 0) -> Input:
    return Input.of(epoch, seq, t, state)


def hello(epoch: int) -> Hello:
    return Hello(epoch, 1, "friend", "pad")


def table(seats: Sequence[int] = (2,), allow: dict[str, int | None] | None = None) -> SeatTable:
    return SeatTable(seats, allow or {}, stale_s=0.25, idle_s=60)


def of(actions: Sequence[Effect], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def replies(actions: Sequence[Effect]) -> list:
    return [a.frame for a in of(actions, Reply)]


def test_hello_takes_a_free_seat_and_gets_welcome() -> None:
    t = table()
    actions = t.on_frame("alice", hello(7), 0.0)
    assert replies(actions) == [Welcome(7, 2)]
    assert of(actions, SeatChange)[0].event == "seat_taken"
    assert t.occupancy() == [(2, "alice")]


def test_first_input_takes_a_seat_and_is_applied() -> None:
    t = table()
    actions = t.on_frame("alice", inp(7, 1), 0.0)
    assert replies(actions) == [Welcome(7, 2)]
    assert of(actions, Apply) == [Apply(2, "alice", inp(7, 1))]


def test_repeated_hello_gets_welcome_again() -> None:
    t = table()
    t.on_frame("alice", hello(7), 0.0)
    assert replies(t.on_frame("alice", hello(7), 0.1)) == [Welcome(7, 2)]


def test_full_house_rejects_once_per_epoch() -> None:
    t = table()
    t.on_frame("alice", hello(1), 0.0)
    first = t.on_frame("bob", hello(2), 0.0)
    assert [type(f) for f in replies(first)] == [Reject]
    assert replies(first)[0].code == RejectCode.FULL
    assert t.on_frame("bob", hello(2), 0.1) == ()
    assert t.on_frame("bob", inp(2, 1), 0.1) == ()  # nothing of bob's reaches a pad
    assert replies(t.on_frame("bob", hello(3), 0.2))[0].code == RejectCode.FULL  # new epoch
    assert t.drops()["full"] == 4


def test_not_allowed_user_is_rejected_once_and_moves_nothing() -> None:
    t = table(allow={"alice": None})
    first = t.on_frame("mallory", inp(5, 1), 0.0)
    assert replies(first) == [Reject(5, RejectCode.NOT_ALLOWED, replies(first)[0].reason)]
    for seq in range(2, 6):
        assert t.on_frame("mallory", inp(5, seq), 0.0) == ()
    assert t.on_frame("mallory", Ping(5, 1), 0.0) == ()
    assert t.occupancy() == [(2, "")]
    assert t.drops()["not_allowed"] == 6
    assert replies(t.on_frame("alice", hello(1), 0.0)) == [Welcome(1, 2)]


def test_allow_with_seat_reserves_it() -> None:
    t = table(seats=(2, 3), allow={"alice": 3, "bob": None, "carol": None})
    assert replies(t.on_frame("bob", hello(1), 0.0)) == [Welcome(1, 2)]
    assert replies(t.on_frame("carol", hello(2), 0.0))[0].code == RejectCode.FULL  # 3 is alice's
    assert replies(t.on_frame("alice", hello(3), 0.0)) == [Welcome(3, 3)]


def test_first_come_when_allow_is_empty() -> None:
    t = table(seats=(2, 3))
    assert t.first_come
    t.on_frame("alice", hello(1), 0.0)
    t.on_frame("bob", hello(2), 0.0)
    assert t.occupancy() == [(2, "alice"), (3, "bob")]


def test_seq_window_drops_duplicate_and_old() -> None:
    t = table()
    t.on_frame("alice", inp(1, 10), 0.0)
    assert t.on_frame("alice", inp(1, 10), 0.0) == ()
    assert t.on_frame("alice", inp(1, 9), 0.0) == ()
    assert of(t.on_frame("alice", inp(1, 12), 0.0), Apply)  # a gap is fine
    assert t.drops()["duplicate"] == 1
    assert t.drops()["old_seq"] == 1


def test_seq_wraps_around_2_to_the_32() -> None:
    t = table()
    t.on_frame("alice", inp(1, 0xFFFFFFFF), 0.0)
    assert of(t.on_frame("alice", inp(1, 0), 0.0), Apply)
    assert t.on_frame("alice", inp(1, 0xFFFFFFFF), 0.0) == ()


def test_seq_window_is_2_to_the_16() -> None:
    """Rule 4: a jump of 2^16 or more is dropped; one just inside the window is applied."""
    t = table()
    t.on_frame("alice", inp(1, 0), 0.0)
    assert t.on_frame("alice", inp(1, 1 << 16), 0.0) == ()
    assert t.on_frame("alice", inp(1, 1 << 30), 0.0) == ()
    assert of(t.on_frame("alice", inp(1, (1 << 16) - 1), 0.0), Apply)


def test_new_epoch_replaces_and_old_epoch_never_returns() -> None:
    t = table()
    t.on_frame("alice", inp(1, 100), 0.0)
    actions = t.on_frame("alice", hello(2), 0.1)
    assert of(actions, Neutral) == [Neutral(2, "bye", "alice", 1)]
    assert replies(actions) == [Welcome(2, 2)]
    assert of(actions, SeatChange)[0].event == "epoch_replaced"
    assert of(t.on_frame("alice", inp(2, 1), 0.1), Apply)  # seq restarts with the epoch
    late = t.on_frame("alice", inp(1, 101), 0.2)  # late frame of the dead process
    assert not of(late, Apply)
    assert [(r.epoch, r.code) for r in replies(late)] == [(1, RejectCode.REPLACED)]
    assert t.on_frame("alice", hello(1), 0.2) == ()  # told once per epoch
    assert t.drops()["stale_epoch"] == 2


def test_new_epoch_by_input_replaces() -> None:
    t = table()
    t.on_frame("alice", inp(1, 100), 0.0)
    actions = t.on_frame("alice", inp(2, 5), 0.1)
    assert of(actions, Apply) == [Apply(2, "alice", inp(2, 5))]
    late = t.on_frame("alice", inp(1, 101), 0.2)
    assert not of(late, Apply)
    assert [r.code for r in replies(late)] == [RejectCode.REPLACED]


def test_bye_neutral_at_once_and_frees_the_seat() -> None:
    t = table()
    t.on_frame("alice", inp(1, 1), 0.0)
    actions = t.on_frame("alice", Bye(1), 0.1)
    assert of(actions, Neutral) == [Neutral(2, "bye", "alice", 1)]
    assert of(actions, SeatChange)[0].event == "seat_freed"
    assert t.occupancy() == [(2, "")]
    late = t.on_frame("alice", inp(1, 2), 0.2)  # the ended epoch cannot come back
    assert not of(late, Apply)
    assert t.occupancy() == [(2, "")]
    assert replies(t.on_frame("bob", hello(9), 0.2)) == [Welcome(9, 2)]


def test_bye_of_an_older_epoch_changes_nothing() -> None:
    t = table()
    t.on_frame("alice", inp(2, 1), 0.0)
    assert t.on_frame("alice", Bye(1), 0.1) == ()
    assert t.occupancy() == [(2, "alice")]
    late = t.on_frame("alice", inp(1, 5), 0.1)  # and that epoch is dead now
    assert not of(late, Apply)
    assert [r.code for r in replies(late)] == [RejectCode.REPLACED]


def test_ping_gets_pong_with_seat() -> None:
    t = table()
    assert replies(t.on_frame("alice", Ping(1, 1234), 0.0)) == [Pong(1, 1234, 0)]
    t.on_frame("alice", hello(1), 0.0)
    assert replies(t.on_frame("alice", Ping(1, 99), 0.0)) == [Pong(1, 99, 2)]


def test_stale_goes_neutral_once_and_resumes_with_input() -> None:
    t = table()
    t.on_frame("alice", inp(1, 1), 0.0)
    assert t.next_deadline() == pytest.approx(0.25)
    assert t.tick(0.2) == []
    assert t.tick(0.25) == [Neutral(2, "stale", "alice", 1)]
    assert t.tick(0.5) == []
    assert t.views()[0].stale
    assert of(t.on_frame("alice", inp(1, 2, t=600_000), 0.6), Apply)
    assert not t.views()[0].stale
    assert t.tick(0.7) == []


def test_ping_keeps_the_seat_alive() -> None:
    t = table()
    t.on_frame("alice", inp(1, 1), 0.0)
    t.on_frame("alice", Ping(1, 0), 0.2)
    assert t.tick(0.3) == []


def test_idle_frees_the_seat_but_the_epoch_may_return() -> None:
    t = SeatTable([2], {}, stale_s=0.25, idle_s=5)
    t.on_frame("alice", inp(1, 1), 0.0)
    t.tick(1.0)
    assert t.next_deadline() == pytest.approx(5.0)
    actions = t.tick(5.0)
    assert actions == [SeatChange("seat_freed", 2, "alice", 1, "idle")]
    assert t.occupancy() == [(2, "")]
    assert t.next_deadline() is None
    assert of(t.on_frame("alice", inp(1, 2), 6.0), Apply)  # back from sleep: seated again


def test_host_to_guest_frames_on_in_topic_are_dropped() -> None:
    t = table()
    assert t.on_frame("alice", HostState(True, []), 0.0) == ()
    assert t.on_frame("alice", Welcome(1, 2), 0.0) == ()
    assert t.drops()["unexpected_kind"] == 2


def test_bye_when_not_seated_is_counted() -> None:
    t = table()
    assert t.on_frame("alice", Bye(1), 0.0) == ()
    assert t.drops()["not_seated"] == 1


def test_hello_with_an_unknown_proto_gets_one_protocol_reject_per_epoch() -> None:
    """Rule 3: a Hello speaking another proto is answered Reject(PROTOCOL), never silence."""
    t = table()
    first = t.on_frame("alice", Hello(7, 2, "friend", "pad"), 0.0)
    assert [(type(f), f.code) for f in replies(first)] == [(Reject, RejectCode.PROTOCOL)]
    assert t.on_frame("alice", Hello(7, 2, "friend", "pad"), 0.1) == ()  # once per epoch
    assert t.occupancy() == [(2, "")]  # no seat taken
    again = t.on_frame("alice", Hello(8, 0, "friend", "pad"), 0.2)  # a new epoch: answered again
    assert [f.code for f in replies(again)] == [RejectCode.PROTOCOL]
    assert t.drops()["protocol"] == 3


def test_a_reject_that_was_not_sent_is_answered_on_the_next_try() -> None:
    """forget_reject (the rate limit held that Reject back): the next frame is answered."""
    t = table(allow={"alice": None})
    assert replies(t.on_frame("bob", hello(5), 0.0))[0].code == RejectCode.NOT_ALLOWED
    assert t.on_frame("bob", hello(5), 0.1) == ()  # once per epoch
    t.forget_reject("bob", 5, RejectCode.NOT_ALLOWED)
    assert replies(t.on_frame("bob", hello(5), 0.2))[0].code == RejectCode.NOT_ALLOWED
    t.forget_reject("bob", 4, RejectCode.NOT_ALLOWED)  # not the one on record: no change
    assert t.on_frame("bob", hello(5), 0.3) == ()
