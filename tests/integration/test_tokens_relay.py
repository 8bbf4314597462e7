"""The token client and the link against the real relay service over real HTTP and MQTT."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from relay.errors import AuthError
from relay.link import Link
from relay.linkstatus import LinkState
from relay.logs import Redactor
from relay.secrets import Secret
from relay.tokens import APP_TOKEN_PATH, USER_TOKEN_PATH, Credentials, TokenClient
from tests.support.link_helpers import Recorder, StatusLog, link_settings
from tests.support.relay_service import RelayService

WAIT = 20.0  # generous: the machine is shared and loaded


class CountingTransport(httpx.BaseTransport):
    """Real HTTP, with a record of the paths asked for."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class Recording:
    """A CredentialSource proxy that remembers which credentials it handed out."""

    def __init__(self, inner: TokenClient) -> None:
        self.inner = inner
        self.handed: list[Credentials] = []

    def get(self) -> Credentials:
        self.handed.append(self.inner.get())
        return self.handed[-1]

    def refresh(self) -> Credentials:
        self.handed.append(self.inner.refresh())
        return self.handed[-1]

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Things with ``stop()`` or ``close()`` to end after the test, last made first."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, Link):
            thing.stop(timeout=1.0)
        else:
            thing.close()


def _settings(service: RelayService, username: str, secret: str | None = None, **kw: Any) -> Any:
    return link_settings(
        kw.pop("broker_url", service.broker_url),
        username,
        api_url=service.api_url,
        app_id=service.app_id,
        app_client_id=service.client_id,
        app_client_secret=Secret(secret or service.client_secret),
        device_id=f"dev-{username}",
        **kw,
    )


def _client(service: RelayService, username: str, cleanup: list[Any], **kw: Any) -> TokenClient:
    secret = kw.pop("secret", None)
    client = TokenClient(_settings(service, username, secret), Redactor(), **kw)
    cleanup.append(client)
    return client


def _link(
    service: RelayService, username: str, credentials: Any, cleanup: list[Any], **kw: Any
) -> Link:
    kw.setdefault("on_message", Recorder())
    kw.setdefault("reconnect_min_s", 0.1)
    kw.setdefault("reconnect_max_s", 1.0)
    link = Link(_settings(service, username), credentials, **kw)
    cleanup.append(link)
    link.start()
    return link


def test_tokens_fetched_and_link_connects(relay_service: RelayService, cleanup: list[Any]) -> None:
    """Real tokens from the relay open the embedded broker to host and guest; frames flow."""
    transport = CountingTransport()
    alice_tokens = _client(relay_service, "alice", cleanup, transport=transport)
    creds = alice_tokens.get()
    assert creds.client_id == relay_service.cid("dev-alice")
    assert creds.password.reveal().count(".") == 2  # a JWT
    assert transport.paths == [APP_TOKEN_PATH, USER_TOKEN_PATH]

    inbox = Recorder()
    host = _link(
        relay_service,
        "streamer",
        _client(relay_service, "streamer", cleanup),
        cleanup,
        on_message=inbox,
        subscriptions=[("coplay/friday/in/+", 0)],
    )
    guest = _link(relay_service, "alice", alice_tokens, cleanup)
    assert host.wait_connected(WAIT), host.status
    assert guest.wait_connected(WAIT), guest.status
    assert transport.paths == [APP_TOKEN_PATH, USER_TOKEN_PATH]  # the cached token was used
    assert guest.publish("coplay/friday/in/alice", b"\x91\x02")
    assert inbox.wait_payload(b"\x91\x02")[0].topic == "coplay/friday/in/alice"


def test_wrong_app_secret_is_auth_error(relay_service: RelayService, cleanup: list[Any]) -> None:
    """A wrong app secret: AuthError (exit 77) at once; a link with it ends REFUSED."""
    tokens = _client(relay_service, "alice", cleanup, secret="not-the-secret")
    with pytest.raises(AuthError) as caught:
        tokens.get()
    assert caught.value.exit_code == 77
    link = _link(relay_service, "alice", tokens, cleanup)
    assert link.wait_state([LinkState.REFUSED], WAIT).state is LinkState.REFUSED
    assert isinstance(link.failure, AuthError)


def test_token_api_down_at_start_then_up(
    relay_service_factory: Callable[..., RelayService], cleanup: list[Any]
) -> None:
    """Relay not running yet: the client backs off, and connects once the relay comes up."""
    service = relay_service_factory(start=False)
    retried = threading.Event()

    def sleep(seconds: float) -> None:
        retried.set()
        time.sleep(min(seconds, 0.5))

    tokens = _client(service, "alice", cleanup, sleep=sleep, retry_budget_s=120.0)
    statuses = StatusLog()
    link = _link(service, "alice", tokens, cleanup, on_status=statuses)
    assert retried.wait(WAIT)
    assert link.status.state is LinkState.STARTING
    service.start()
    assert link.wait_connected(WAIT), link.status
    assert link.failure is None


def test_refreshed_token_used_on_reconnect(relay_service: RelayService, cleanup: list[Any]) -> None:
    """A token near expiry is replaced at the next reconnect, with no error on the way."""
    offset = [0.0]
    transport = CountingTransport()
    tokens = Recording(
        _client(
            relay_service,
            "alice",
            cleanup,
            transport=transport,
            clock=lambda: time.monotonic() + offset[0],
        )
    )
    statuses = StatusLog()
    link = _link(relay_service, "alice", tokens, cleanup, on_status=statuses)
    assert link.wait_connected(WAIT)
    assert transport.paths.count(USER_TOKEN_PATH) == 1

    offset[0] = 3600 * 0.9  # the user token (default 3600 s here) is now in its refresh window
    sock = link.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)  # cut the connection: the link reconnects
    assert link.wait_state([LinkState.RECONNECTING], WAIT).state is LinkState.RECONNECTING
    assert link.wait_connected(WAIT), link.status
    assert transport.paths.count(USER_TOKEN_PATH) == 2
    assert len(tokens.handed) >= 2
    assert link.failure is None
    assert all(s.state is not LinkState.REFUSED for s in statuses.seen)

    # and refresh() (what the link does after a refused password) also reconnects cleanly
    tokens.refresh()
    sock = link.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)
    assert link.wait_state([LinkState.RECONNECTING], WAIT).state is LinkState.RECONNECTING
    assert link.wait_connected(WAIT), link.status
    assert link.failure is None


def test_websocket_link_with_nodelay(relay_service: RelayService, cleanup: list[Any]) -> None:
    """ws:// to the relay's WebSocket listener: connects, exchanges frames, Nagle off."""
    inbox = Recorder()
    host = _link(
        relay_service,
        "streamer",
        _client(relay_service, "streamer", cleanup),
        cleanup,
        on_message=inbox,
        subscriptions=[("coplay/friday/in/+", 0)],
    )
    guest = Link(
        _settings(relay_service, "alice", broker_url=relay_service.ws_url),
        _client(relay_service, "alice", cleanup),
        on_message=Recorder(),
    )
    cleanup.append(guest)
    guest.start()
    assert host.wait_connected(WAIT), host.status
    assert guest.wait_connected(WAIT), guest.status
    sock = guest.socket()
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert guest.publish("coplay/friday/in/alice", b"\x91\x03")
    inbox.wait_payload(b"\x91\x03")
