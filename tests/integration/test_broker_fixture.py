"""The Mosquitto fixture is a real broker enforcing the coplay ACL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.mqtt import RawClient


def test_publish_subscribe_round_trip(mqtt_client: Callable[..., RawClient], prefix: str) -> None:
    """A guest's frame on its own in/ topic reaches the host."""
    host = mqtt_client("streamer")
    host.wait_connected()
    host.subscribe(f"{prefix}/friday/in/+")
    alice = mqtt_client("alice")
    alice.wait_connected()
    alice.publish(f"{prefix}/friday/in/alice", b"\x91\x07", qos=1)
    got = host.inbox.wait_count(1)
    assert got[0].topic == f"{prefix}/friday/in/alice"
    assert got[0].payload == b"\x91\x07"


def test_guest_cannot_publish_as_another_user(
    mqtt_client: Callable[..., RawClient], prefix: str
) -> None:
    """Alice publishing on bob's in/ topic is not delivered; her own topic is."""
    host = mqtt_client("streamer")
    host.wait_connected()
    host.subscribe(f"{prefix}/friday/in/+")
    alice = mqtt_client("alice")
    alice.wait_connected()
    alice.publish(f"{prefix}/friday/in/bob", b"forged", qos=1)
    alice.publish(f"{prefix}/friday/in/alice", b"mine", qos=1)
    got = host.inbox.wait_count(1)
    assert [m.payload for m in got] == [b"mine"]


def test_wrong_password_is_refused(mqtt_client: Callable[..., RawClient]) -> None:
    client = mqtt_client("alice", password="not-the-password")
    reason = client.wait_connected()
    assert reason.lower() in ("not authorized", "bad user name or password")


@pytest.mark.parametrize("topic_tail", ["in/+", "out/bob"])
def test_guest_cannot_read_others(
    mqtt_client: Callable[..., RawClient], prefix: str, topic_tail: str
) -> None:
    """A guest subscribing to in/+ or another guest's out/ topic receives nothing."""
    spy = mqtt_client("alice")
    spy.wait_connected()
    spy.subscribe(f"{prefix}/friday/{topic_tail}")
    spy.subscribe(f"{prefix}/friday/out/alice")
    host = mqtt_client("streamer")
    host.wait_connected()
    bob = mqtt_client("bob")
    bob.wait_connected()
    bob.publish(f"{prefix}/friday/in/bob", b"secret-input", qos=1)
    host.publish(f"{prefix}/friday/out/bob", b"for-bob", qos=1)
    host.publish(f"{prefix}/friday/out/alice", b"for-alice", qos=1)
    got = spy.inbox.wait_count(1)
    assert [m.payload for m in got] == [b"for-alice"]
