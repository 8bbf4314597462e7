"""The guest names what it waits for: the host, the token API (with the retry delay), the broker."""

from __future__ import annotations

import httpx

from guest.session import WAITING_FOR_HOST, Session
from relay.frames import FrameCodec, HostState
from relay.linkstatus import LinkState, LinkStatus
from relay.secrets import Secret
from relay.tokens import TokenClient, retry_text
from relay.topics import Topics
from tests.support.link_helpers import link_settings

TOPICS = Topics("coplay", "s1")
CODEC = FrameCodec()


def _session(waiting: str = "") -> Session:
    return Session(
        TOPICS,
        "alice",
        7,
        lambda topic, payload, qos: True,
        name="Alice",
        controller=lambda: None,
        waiting=lambda: waiting,
    )


def test_connected_without_a_host_says_it_waits_for_the_host() -> None:
    session = _session()
    session.on_status(LinkStatus(LinkState.CONNECTED))
    assert session.view().note == WAITING_FOR_HOST
    session.on_message(TOPICS.host, CODEC.encode(HostState(False, [(2, "")])), True)
    assert session.view().note == WAITING_FOR_HOST
    session.on_message(TOPICS.host, CODEC.encode(HostState(True, [(2, "alice")])), True)
    assert session.view().note == "" and session.view().seat == 2


def test_while_the_link_is_down_the_token_wait_comes_first_then_the_link_reason() -> None:
    waiting = _session("token API unreachable (retrying in 4 s)")
    waiting.on_status(LinkStatus(LinkState.STARTING, "broker unreachable"))
    assert waiting.view().note == "token API unreachable (retrying in 4 s)"
    plain = _session()
    plain.on_status(LinkStatus(LinkState.STARTING, "broker unreachable"))
    assert plain.view().note == "broker unreachable"


def test_the_token_client_says_it_is_unreachable_and_when_it_retries() -> None:
    now = [1000.0]
    seen: list[str] = []
    attempts = [0]

    def api(request: httpx.Request) -> httpx.Response:
        attempts[0] += 1
        if attempts[0] <= 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(
            200,
            json={"code": 200, "msg": "success", "body": {"access_token": "t", "expires_in": 3600}},
        )

    client: TokenClient

    def sleep(seconds: float) -> None:
        seen.append(retry_text(client))
        now[0] += seconds

    settings = link_settings(
        "mqtt://127.0.0.1:1883",
        "alice",
        api_url="http://tokens.test",
        app_client_secret=Secret("app-secret-value-123"),
        device_id="dev1",
    )
    client = TokenClient(
        settings,
        transport=httpx.MockTransport(api),
        clock=lambda: now[0],
        sleep=sleep,
        rng=lambda: 1.0,
        backoff_base_s=4.0,
    )
    try:
        assert retry_text(client) == ""
        client.get()
    finally:
        client.close()
    assert seen == [
        "token API unreachable (retrying in 4 s)",
        "token API unreachable (retrying in 8 s)",
    ]
    assert retry_text(client) == ""
