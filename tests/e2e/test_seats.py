"""Who gets a seat: a full house or an unlisted user is rejected; a restarted guest takes over."""

from __future__ import annotations

from collections.abc import Callable

from relay.frames import FrameCodec, Input, PadState
from relay.topics import Topics
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient
from tests.support.stack import Stack, press_and_see

X = 1 << 2
REJECT_FULL = 2
REJECT_REPLACED = 5
EXIT_REJECTED = 75
KEYFRAMES = 30  # half a second of a 60 Hz guest's keyframes


def test_a_guest_for_a_full_seat_is_rejected_and_waits(stack: Stack, mosquitto: Mosquitto) -> None:
    """seats = [2] with alice seated: bob is told the house is full, keeps waiting, moves no pad."""
    host = stack.host(mosquitto, seats=[2], status_interval_s=0.2)
    host.wait_ready()
    alice = stack.guest(mosquitto, "alice")
    assert alice.wait_seated() == 2

    bob = stack.guest(mosquitto, "bob")
    rejected = bob.wait_log(lambda e: e.get("event") == "rejected")
    assert (rejected["code"], rejected["final"]) == ("full", False)
    assert rejected["reason"] == "every seat is taken"
    status = bob.status(
        state="connected", seat=None, note="waiting for a seat (full: every seat is taken)"
    )
    assert status["host"] == "online"
    told = host.wait_log("guest_rejected", lambda x: x.get("user") == "bob")
    assert told["code"] == REJECT_FULL

    # bob's pad moves; his frames reach the host and are dropped there, never applied
    seen = host.drops_now("full")
    bob.send(press="X")
    host.wait_drops("full", seen + KEYFRAMES)
    press_and_see(alice, host, "A")
    assert all(x["user"] != "bob" for x in host.lines())
    assert all(not x["buttons"] & X for x in host.lines())
    assert bob.alive(), "a full house is not final: bob waits for a seat"
    assert bob.count("rejected") == 1, "one Reject per epoch"


def test_a_second_guest_with_the_same_username_takes_over(
    stack: Stack, mosquitto: Mosquitto, mqtt_client: Callable[..., RawClient]
) -> None:
    """A new epoch of the seat's user replaces the old one; the old guest is told and stops."""
    host = stack.host(mosquitto, seats=[2], status_interval_s=0.2)
    host.wait_ready()
    first = stack.guest(mosquitto, "alice")
    assert first.wait_seated() == 2
    old_epoch = first.epoch()
    first.send(press="X")  # the old process holds X: it must never show up again
    host.wait_lines("input", buttons=X)

    second = stack.guest(mosquitto, "alice")
    new_epoch = second.epoch()
    replaced = host.wait_log("epoch_replaced")
    assert (replaced["user"], replaced["epoch"], replaced["seat"]) == ("alice", new_epoch, 2)
    assert second.wait_seated() == 2

    # The older guest's next frame is answered with a final Reject: it stops and says why.
    assert first.wait_exit(20) == EXIT_REJECTED
    rejected = next(e for e in first.events() if e.get("event") == "rejected")
    assert (rejected["code"], rejected["final"]) == ("replaced", True)
    assert _plain(first.log_text()) == [
        "coplay-guest: the host rejected 'alice' (replaced: this session ended or a newer "
        "coplay-guest of this user took over)"
    ]
    told = host.wait_log("guest_rejected", lambda x: x.get("user") == "alice")
    assert told["code"] == REJECT_REPLACED

    # A late frame of the dead epoch cannot take the pad back (rule 4).
    pressed = press_and_see(second, host, "B")[0]
    mark = host.lines().index(pressed)
    assert pressed["epoch"] == new_epoch
    seen = host.drops_now("stale_epoch")
    late = mqtt_client("alice")
    late.wait_connected()
    held = Input.of(old_epoch, 2**31, 0, PadState(buttons=X))
    late.publish(Topics(stack.prefix, "s1").input("alice"), FrameCodec().encode(held), 1)
    host.wait_drops("stale_epoch", seen)
    press_and_see(second, host, "Y")
    assert all(x["epoch"] == new_epoch for x in host.lines()[mark:] if x["reason"] == "input")
    assert all(not x["buttons"] & X for x in host.lines()[mark:])
    assert len(host.log_lines("guest_rejected")) == 1, "one Reject per epoch"


def test_a_guest_who_is_not_allowed_exits_75_with_the_reason(
    stack: Stack, mosquitto: Mosquitto
) -> None:
    """allow = ["alice"]: carol's Reject is final, so her guest stops and says why."""
    host = stack.host(mosquitto, allow=["alice"])
    host.wait_ready()
    carol = stack.guest(mosquitto, "carol")
    assert carol.wait_exit(20) == EXIT_REJECTED
    assert _plain(carol.log_text()) == [
        "coplay-guest: the host rejected 'carol' (not_allowed: this user is not allowed on "
        "this host); ask the streamer to allow you"
    ]
    assert host.wait_log("guest_rejected")["user"] == "carol"
    assert host.lines() == []


def _plain(text: str) -> list[str]:
    """The stderr lines that are not JSON log lines: what the user reads."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
