"""Fixtures every test tier shares: a real Mosquitto, unique prefixes, raw MQTT clients."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.invite_api import invite_api  # noqa: F401
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient
from tests.support.relay_service import relay_service, relay_service_factory  # noqa: F401


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One Mosquitto for the whole run (ACL and passwords as a deployment has them)."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.prepare()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own, for tests that kill or restart the broker."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.prepare()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mqtt_client(mosquitto: Mosquitto) -> Iterator[Callable[..., RawClient]]:
    """Factory for raw paho clients on the shared Mosquitto, logged in as a known user."""
    made: list[RawClient] = []

    def make(
        username: str, *, port: int | None = None, password: str | None = None, **kwargs: object
    ) -> RawClient:
        client = RawClient(
            port or mosquitto.port,
            username,
            mosquitto.passwords[username] if password is None else password,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
