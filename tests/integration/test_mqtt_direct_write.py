"""A publish leaves on the publishing thread: it does not wait for paho's network thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from relay.link import Link
from relay.mqttclient import DirectWriteClient
from relay.tokens import StaticCredentials
from tests.support.link_helpers import link_settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient

WAIT = 15.0


class Stuck:
    """A message handler that holds paho's network thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, topic: str, payload: bytes, retained: bool) -> None:
        self.entered.set()
        self.release.wait(WAIT)


@pytest.fixture
def stuck_guest(mosquitto: Mosquitto, prefix: str) -> Iterator[tuple[Link, Stuck]]:
    handler = Stuck()
    settings = link_settings(mosquitto.url, "alice", mosquitto.passwords["alice"])
    link = Link(
        settings,
        StaticCredentials(settings),
        on_message=handler,
        subscriptions=[(f"{prefix}/friday/out/alice", 0)],
    )
    link.start()
    try:
        yield link, handler
    finally:
        handler.release.set()
        link.stop(timeout=1.0)


def test_publish_goes_out_while_the_network_thread_is_busy(
    mosquitto: Mosquitto, stuck_guest: tuple[Link, Stuck], prefix: str
) -> None:
    """An input frame reaches the broker at once even while paho's own thread is elsewhere.

    Stock paho only queues the packet and wakes its network thread to write it, so
    with that thread held in a callback nothing would leave until it returned.
    """
    link, handler = stuck_guest
    host = RawClient(mosquitto.port, "streamer", mosquitto.passwords["streamer"])
    try:
        host.wait_connected()
        host.subscribe(f"{prefix}/friday/in/alice", qos=0)
        assert link.wait_connected(WAIT)
        host.publish(f"{prefix}/friday/out/alice", b"hold the network thread", qos=0)
        assert handler.entered.wait(WAIT), "the guest's handler never ran"

        for i in range(5):
            assert link.publish(f"{prefix}/friday/in/alice", bytes([0x91, i]))
        got = host.inbox.wait_count(5, timeout=WAIT)
        assert [m.payload for m in got] == [bytes([0x91, i]) for i in range(5)]
        assert not handler.release.is_set()  # it really was still held meanwhile
    finally:
        handler.release.set()
        host.close()
    client = link._client  # the count of the writes that took the direct path
    assert isinstance(client, DirectWriteClient) and client.direct_writes >= 5
