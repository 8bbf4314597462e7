"""A real guest names what it waits for: the token API (and when it retries), then the host."""

from __future__ import annotations

from tests.support.mosquitto import Mosquitto
from tests.support.stack import Stack


def test_with_the_token_api_down_then_no_host_the_guest_says_so(stack: Stack) -> None:
    relay = stack.relay(start=False)
    guest = stack.guest(relay, "alice")
    down = guest.wait_log(
        lambda e: (
            e.get("event") == "guest_status"
            and str(e.get("note", "")).startswith("token API unreachable (retrying in ")
        ),
        timeout=20,
    )
    assert down["state"] == "connecting" and down["note"].endswith(" s)")
    relay.start()
    waiting = guest.status(state="connected", note="waiting for the host to come online")
    assert waiting["seat"] is None


def test_a_guest_seated_by_a_host_stops_waiting(stack: Stack, mosquitto: Mosquitto) -> None:
    guest = stack.guest(mosquitto, "alice")
    guest.status(state="connected", note="waiting for the host to come online")
    host = stack.host(mosquitto)
    host.wait_ready()
    guest.wait_seated()
    seated = guest.status(state="connected", seat=2)
    assert seated["note"] == ""


def test_with_the_broker_gone_the_guest_says_it_is_unreachable(
    stack: Stack, private_mosquitto: Mosquitto
) -> None:
    guest = stack.guest(private_mosquitto, "alice")
    guest.status(state="connected", note="waiting for the host to come online")
    private_mosquitto.kill()
    gone = guest.status(state="reconnecting", note="broker unreachable")
    assert gone["seat"] is None
    mark = guest.mark()
    private_mosquitto.start()
    guest.wait_log(
        lambda e: (
            e.get("event") == "guest_status"
            and e.get("state") == "connected"
            and e.get("note") == "waiting for the host to come online"
        ),
        timeout=30,
        since=mark,
    )
