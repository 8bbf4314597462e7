"""Broker URLs: what each scheme means, and the order a list of them is tried in."""

from __future__ import annotations

import pytest

from relay.brokeraddress import BrokerAddress, BrokerRing
from relay.errors import ConfigError
from tests.support.link_helpers import link_settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://h", BrokerAddress("h", 1883, "tcp", False, "")),
        ("mqtts://h:9", BrokerAddress("h", 9, "tcp", True, "")),
        ("ws://h", BrokerAddress("h", 80, "websockets", False, "/mqtt")),
        ("wss://h/broker?x=1", BrokerAddress("h", 443, "websockets", True, "/broker?x=1")),
        ("MQTT://H:1", BrokerAddress("h", 1, "tcp", False, "")),
    ],
)
def test_broker_urls_parse(url: str, expected: BrokerAddress) -> None:
    assert BrokerAddress.parse(url) == expected


@pytest.mark.parametrize("url", ["http://h", "mqtt://", "mqtt://h:99999", "h:1883"])
def test_bad_broker_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="broker_url"):
        BrokerAddress.parse(url)


def test_the_ring_starts_with_the_first_url_and_moves_round_the_list() -> None:
    urls = ("mqtt://a:1", "mqtt://b:2", "mqtt://c:3")
    ring = BrokerRing(link_settings(urls[0], "alice", broker_urls=urls))
    assert str(ring.current) == "a:1"
    switches = [ring.advance() for _ in range(6)]
    # the first attempt stays on a; every later one moves on, round the list
    assert [str(s) if s else None for s in switches] == [None, "b:2", "c:3", "a:1", "b:2", "c:3"]


def test_a_single_url_never_switches() -> None:
    ring = BrokerRing(link_settings("mqtt://a:1", "alice"))
    assert [ring.advance() for _ in range(3)] == [None, None, None]
    assert str(ring.current) == "a:1"
