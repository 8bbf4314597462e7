"""Who gets the seat: a full house rejects a newcomer; a restarted guest takes its seat back."""

from __future__ import annotations

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.stack import Stack, press_and_see

X = 1 << 2
REJECT_FULL = 2
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
    stack: Stack, mosquitto: Mosquitto
) -> None:
    """A new epoch from the seat's user replaces the old one; the old process can't take it back."""
    host = stack.host(mosquitto, seats=[2], status_interval_s=0.2)
    host.wait_ready()
    first = stack.guest(mosquitto, "alice")
    assert first.wait_seated() == 2
    old_epoch = first.epoch()
    press_and_see(first, host, "A")

    second = stack.guest(mosquitto, "alice")
    new_epoch = second.epoch()
    replaced = host.wait_log("epoch_replaced")
    assert (replaced["user"], replaced["epoch"], replaced["seat"]) == ("alice", new_epoch, 2)
    assert second.wait_seated() == 2
    pressed = press_and_see(second, host, "B")
    assert pressed[0]["epoch"] == new_epoch

    # the old process keeps sending (X held): dropped as a stale epoch, never applied
    mark = len(host.lines())
    seen = host.drops_now("stale_epoch")
    first.send(press="X")
    host.wait_drops("stale_epoch", seen + KEYFRAMES)
    press_and_see(second, host, "Y")
    late = host.lines()[mark:]
    assert all(x["epoch"] == new_epoch for x in late if x["reason"] == "input")
    assert all(not x["buttons"] & X for x in late)

    # What the older guest's user sees. DESIGN: it must be told (a Reject) rather than
    # believe it still plays; host/seats.py drops a replaced epoch's frames silently.
    try:
        rejected = first.wait_log(lambda e: e.get("event") == "rejected", timeout=2.0)
    except TimeoutError:
        pytest.xfail(
            "host/seats.py sends no Reject to a replaced epoch that keeps sending; "
            "the older guest still shows itself seated"
        )
    assert rejected["epoch"] == old_epoch
    assert rejected["code"] in ("seat_taken", "protocol", "not_allowed")
