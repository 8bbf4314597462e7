"""The link's broker URL list against real Mosquittos: the next URL on every reconnect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.link import Link
from relay.linkstatus import LinkState
from relay.procs import free_port
from relay.tokens import StaticCredentials
from tests.support.link_helpers import Recorder, link_settings
from tests.support.mosquitto import Mosquitto

WAIT = 15.0


@pytest.fixture
def links() -> Iterator[list[Link]]:
    made: list[Link] = []
    yield made
    for link in made:
        link.stop(timeout=1.0)


def _link(urls: list[str], broker: Mosquitto, made: list[Link], **kwargs: object) -> Link:
    settings = link_settings(
        urls[0], "alice", broker.passwords["alice"], broker_urls=tuple(urls), **kwargs
    )
    link = Link(
        settings,
        StaticCredentials(settings),
        on_message=Recorder(),
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
    )
    made.append(link)
    link.start()
    return link


def _peer_port(link: Link) -> int:
    sock = link.socket()
    assert sock is not None
    return int(sock.getpeername()[1])


def test_a_dead_first_url_is_skipped_for_the_next(mosquitto: Mosquitto, links: list[Link]) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    link = _link([dead, mosquitto.url], mosquitto, links)
    assert link.wait_connected(WAIT)
    assert _peer_port(link) == mosquitto.port


def test_losing_the_broker_moves_round_the_list_and_back(
    private_mosquitto: Mosquitto, links: list[Link]
) -> None:
    """Connected to the first URL; it dies; the link tries the dead second one, then the first."""
    dead = f"mqtt://127.0.0.1:{free_port()}"
    link = _link([private_mosquitto.url, dead], private_mosquitto, links)
    assert link.wait_connected(WAIT) and _peer_port(link) == private_mosquitto.port
    private_mosquitto.kill()
    assert link.wait_state([LinkState.RECONNECTING], WAIT).state is LinkState.RECONNECTING
    private_mosquitto.start()
    assert link.wait_connected(WAIT)
    assert _peer_port(link) == private_mosquitto.port
