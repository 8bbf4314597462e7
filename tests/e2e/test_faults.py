"""Faults mid-session, with real processes: the pad goes neutral, then play resumes by itself."""

from __future__ import annotations

import signal
import time

from tests.support.mosquitto import Mosquitto
from tests.support.stack import Stack, StackGuest, StackHost, press_and_see

B = 1 << 1
NEUTRAL_BOUND_S = 2.0  # stale_ms is 250; this leaves room for a loaded CI machine


def _seated_pair(stack: Stack, endpoint: object) -> tuple[StackHost, StackGuest]:
    host = stack.host(endpoint)  # type: ignore[arg-type]
    host.wait_ready()
    guest = stack.guest(endpoint, "alice")  # type: ignore[arg-type]
    guest.wait_seated()
    press_and_see(guest, host)
    return host, guest


def _hold_b(guest: StackGuest, host: StackHost) -> int:
    """Hold B until the host's pad shows it; the number of pad lines so far."""
    guest.send(press="B")
    host.wait_lines("input", after=len(host.lines()), buttons=B)
    return len(host.lines())


def _after(host: StackHost, line: dict[str, object]) -> int:
    """The index just past ``line`` in the host's pad lines."""
    return host.lines().index(line) + 1


def _neutral_delay_s(line: dict[str, object], since_ns: int) -> float:
    """Seconds from ``since_ns`` (this process's monotonic clock) to the host's line."""
    t_ns = line["t_ns"]
    assert isinstance(t_ns, int)
    return (t_ns - since_ns) / 1e9


def test_broker_restart_goes_neutral_then_both_sides_reconnect(
    stack: Stack, private_mosquitto: Mosquitto
) -> None:
    """Mosquitto killed mid-session: the pad goes stale-neutral; after a restart frames flow."""
    host, guest = _seated_pair(stack, private_mosquitto)
    epoch = guest.epoch()
    mark = _hold_b(guest, host)

    private_mosquitto.kill()
    stale = host.wait_lines("stale", after=mark)[0]
    assert stale["buttons"] == 0 and stale["axes"] == [0, 0, 0, 0, 0, 0]
    host.wait_log("link_lost")
    guest.wait_log(lambda e: e.get("event") == "link_status" and e.get("state") == "reconnecting")
    after = _after(host, stale)
    assert host.lines()[after:] == [], "the pad moved while the broker was down"

    private_mosquitto.start()
    host.wait_log_count("link_connected", 2, timeout=30)
    guest.wait_count("link_connected", 2, timeout=30)
    # B is still held: the guest resends its state on reconnect, same epoch, same seat
    back = host.wait_lines("input", after=after, buttons=B, timeout=20)[0]
    assert (back["user"], back["epoch"], back["seat"]) == ("alice", epoch, 2)
    guest.send(release="B")
    host.wait_lines("input", after=after, buttons=0, timeout=20)
    press_and_see(guest, host, "X")
    assert host.count_log("seat_freed") == 0


def test_guest_sigkill_on_mosquitto_sends_the_last_will(stack: Stack, mosquitto: Mosquitto) -> None:
    """A killed guest's Last Will (Bye) reaches the host: neutral at once and the seat is freed."""
    host, guest = _seated_pair(stack, mosquitto)
    mark = _hold_b(guest, host)

    killed_ns = time.monotonic_ns()
    guest.signal(signal.SIGKILL)
    bye = host.wait_lines("bye", after=mark)[0]
    assert bye["buttons"] == 0 and bye["axes"] == [0, 0, 0, 0, 0, 0]
    assert _neutral_delay_s(bye, killed_ns) < NEUTRAL_BOUND_S
    assert all(x["reason"] != "input" for x in host.lines()[_after(host, bye) :])
    freed = host.wait_log("seat_freed")
    assert (freed["user"], freed["why"]) == ("alice", "bye")


def test_guest_sigkill_on_the_relay_goes_neutral(stack: Stack) -> None:
    """Through the embedded broker a killed guest's pad goes neutral (stale timer or Will)."""
    relay = stack.relay()
    host, guest = _seated_pair(stack, relay)
    mark = _hold_b(guest, host)

    killed_ns = time.monotonic_ns()
    guest.signal(signal.SIGKILL)
    lines = host.jsonl.wait_for(
        lambda ls: any(x["reason"] in ("stale", "bye") for x in ls[mark:]), 15, host.alive
    )
    neutral = next(x for x in lines[mark:] if x["reason"] in ("stale", "bye"))
    assert neutral["buttons"] == 0 and neutral["axes"] == [0, 0, 0, 0, 0, 0]
    assert _neutral_delay_s(neutral, killed_ns) < NEUTRAL_BOUND_S
    assert all(x["reason"] != "input" for x in host.lines()[_after(host, neutral) :])


def test_guest_sigstop_goes_stale_then_resumes_on_sigcont(
    stack: Stack, mosquitto: Mosquitto
) -> None:
    """A frozen guest: stale-neutral within the bound; after SIGCONT its input is applied again."""
    host, guest = _seated_pair(stack, mosquitto)
    epoch = guest.epoch()
    mark = _hold_b(guest, host)

    stopped_ns = time.monotonic_ns()
    guest.signal(signal.SIGSTOP)
    try:
        stale = host.wait_lines("stale", after=mark)[0]
        assert _neutral_delay_s(stale, stopped_ns) < NEUTRAL_BOUND_S
        after = _after(host, stale)
        assert host.lines()[after:] == [], "frames from a stopped guest?"
    finally:
        guest.signal(signal.SIGCONT)
    back = host.wait_lines("input", after=after, buttons=B)[0]
    assert (back["user"], back["epoch"], back["seat"]) == ("alice", epoch, 2)
    guest.send(release="B")
    press_and_see(guest, host, "Y")
    assert host.count_log("seat_freed") == 0 and host.count_log("epoch_replaced") == 0
