"""Invite tokens on the embedded broker of a real ``coplay-relay serve``: a friend reaches its
own session and user only, a second app reaches nothing of the first, and a revoked friend
is cut off at once.

The two ACL tests run on a 3-node NATS cluster behind ``coplay-relay nats-callout`` too
(``broker_ports``, clients spread over the nodes); cutting a live connection off at once is
the embedded broker's alone (on NATS a revoked token is refused at its next login)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.mqtt import RawClient
from tests.support.nats_cluster import NatsCluster
from tests.support.relay_service import RelayService, running_relay

SUCCESS = "Success"
OTHER_APP = (
    "\n[[apps]]\n"
    'app_id = "other"\n'
    'client_id = "other-app"\n'
    'client_secret = "other-secret-0123456789"\n'
    'hosts = ["boss"]\n'
    'topic_prefix = "other"\n'
    'guest_tokens = "app"\n'
)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayService]:
    """One relay with two apps: ``coplay`` (invites) and ``other`` (prefix ``other``)."""
    with running_relay(tmp_path_factory.mktemp("relay"), extra_apps=OTHER_APP) as service:
        yield service


@pytest.fixture(scope="module", params=["embedded", "nats"])
def broker_ports(
    request: pytest.FixtureRequest, relay: RelayService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, ...]]:
    """The embedded broker's port, or the MQTT ports of a NATS cluster on this relay's tokens."""
    if request.param == "embedded":
        yield (relay.mqtt_port,)
        return
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"), relay).start()
    try:
        yield tuple(node.mqtt_port for node in cluster.nodes)
    finally:
        cluster.stop()


@pytest.fixture
def connect(
    relay: RelayService, broker_ports: tuple[int, ...]
) -> Iterator[Callable[..., RawClient]]:
    """``connect(username, token, client_id)`` -> a connected-or-refused RawClient."""
    made: list[RawClient] = []

    def make(username: str, token: str, client_id: str) -> RawClient:
        port = broker_ports[len(made) % len(broker_ports)]
        client = RawClient(port, username, token, client_id=client_id)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def alice(relay: RelayService, session: str, device: str) -> tuple[dict[str, Any], str]:
    """A redeemed invite for alice in ``session`` and a user token from it."""
    redeemed = relay.redeem(relay.invite("alice", session)["invite"]).json()["body"]
    return redeemed, relay.friend_token(redeemed, device)


def marker_round(host: RawClient, guest: RawClient, session: str) -> None:
    """A message the guest may get, through the broker after everything sent before it."""
    host.publish(f"coplay/{session}/out/alice", b"marker", qos=1)
    guest.inbox.wait_for(lambda m: any(x.payload == b"marker" for x in m))


def test_friend_reaches_its_own_session_and_user_only(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    other_session = session_name + "x"
    host = connect("streamer", relay.host_token("h-only"), relay.cid("h-only"))
    bob = connect("bob", relay.user_token("bob", "b-only"), relay.cid("b-only"))
    _, token = alice(relay, session_name, "a-only")
    friend = connect("alice", token, relay.cid("a-only"))
    for client in (host, bob, friend):
        assert client.wait_connected() == SUCCESS
    host.subscribe("coplay/+/in/+")
    friend.subscribe(f"coplay/{session_name}/out/alice")
    friend.subscribe("coplay/+/in/+")
    assert friend.granted[-1] is False  # refused in the SUBACK
    friend.subscribe(f"coplay/{other_session}/host")
    assert friend.granted[-1] is False

    friend.publish(f"coplay/{other_session}/in/alice", b"other-session", qos=1)
    friend.publish(f"coplay/{session_name}/in/bob", b"as-bob", qos=1)
    bob.publish(f"coplay/{session_name}/in/bob", b"bob-input", qos=1)
    friend.publish(f"coplay/{session_name}/in/alice", b"mine", qos=1)
    got = host.inbox.wait_for(lambda m: any(x.payload == b"mine" for x in m))
    assert sorted(m.payload for m in got) == [b"bob-input", b"mine"]
    marker_round(host, friend, session_name)
    assert [m.payload for m in friend.inbox.snapshot()] == [b"marker"]  # never bob's input


def test_a_second_app_reaches_none_of_the_first_apps_topics(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", relay.host_token("h-iso"), relay.cid("h-iso"))
    _, token = alice(relay, session_name, "a-iso")
    friend = connect("alice", token, relay.cid("a-iso"))
    app = relay.post(
        "/openapi/rm/app/token",
        {"appClientId": "other-app", "appClientSecret": "other-secret-0123456789"},
    ).json()["body"]["access_token"]

    def other_token(user: str, device: str) -> str:
        reply = relay.post(
            "/openapi/rm/user/token",
            {"username": user, "cid": f"{device}@other"},
            headers={"Authorization": app},
        )
        return str(reply.json()["body"]["access_token"])

    boss = connect("boss", other_token("boss", "o-boss"), "o-boss@other")
    # a guest of the other app named like the first app's friend and host
    mallory = connect("alice", other_token("alice", "o-alice"), "o-alice@other")
    for client in (host, friend, boss, mallory):
        assert client.wait_connected() == SUCCESS
    host.subscribe("coplay/+/in/+")
    friend.subscribe(f"coplay/{session_name}/out/alice")
    for client in (boss, mallory):
        client.subscribe("coplay/+/in/+")
        assert client.granted[-1] is False
        client.subscribe(f"coplay/{session_name}/out/alice")
        assert client.granted[-1] is False
    boss.publish(f"coplay/{session_name}/out/alice", b"forged-welcome", qos=1)
    boss.publish(f"coplay/{session_name}/host", b"forged-offline", qos=1, retain=True)
    mallory.publish(f"coplay/{session_name}/in/alice", b"forged-input", qos=1)
    friend.publish(f"coplay/{session_name}/in/alice", b"real-input", qos=1)
    got = host.inbox.wait_for(lambda m: any(x.payload == b"real-input" for x in m))
    assert [m.payload for m in got] == [b"real-input"]
    marker_round(host, friend, session_name)
    assert [m.payload for m in friend.inbox.snapshot()] == [b"marker"]
    late = connect("bob", relay.user_token("bob", "b-late"), relay.cid("b-late"))
    assert late.wait_connected() == SUCCESS
    late.subscribe(f"coplay/{session_name}/host")
    assert late.granted[-1] is True
    time.sleep(0.3)  # nothing to await: asserting that no forged retained state arrives
    assert late.inbox.snapshot() == []


@pytest.mark.parametrize("broker_ports", ["embedded"], indirect=True)
def test_revoke_cuts_the_friend_off_within_a_second(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", relay.host_token("h-rev"), relay.cid("h-rev"))
    redeemed, token = alice(relay, session_name, "a-rev")
    friend = connect("alice", token, relay.cid("a-rev"))
    bob = connect("bob", relay.user_token("bob", "b-rev"), relay.cid("b-rev"))
    for client in (host, friend, bob):
        assert client.wait_connected() == SUCCESS
    host.subscribe(f"coplay/{session_name}/in/+")
    friend.publish(f"coplay/{session_name}/in/alice", b"before", qos=1)
    host.inbox.wait_count(1)

    # a guest streams frames while it is revoked (a quiet one is the easy case)
    streaming = threading.Event()

    def stream() -> None:
        while not friend.disconnected.is_set() and not stop.is_set():
            friend.client.publish(f"coplay/{session_name}/in/alice", b"frame", 0)
            streaming.set()
            time.sleep(0.004)  # a guest's pace: about 250 frames a second

    stop = threading.Event()
    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    assert streaming.wait(5)
    started = time.monotonic()
    try:
        assert relay.revoke("alice", session_name).json()["body"] == {"revoked": 1}
        assert friend.disconnected.wait(1.0), "the revoked friend is still connected after 1 s"
        assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        sender.join(5)
    assert not bob.disconnected.is_set()

    again = connect("alice", token, relay.cid("a-rev"))  # the very token and client id
    assert again.wait_connected() != SUCCESS  # no longer log in
    assert relay.friend_app_token(redeemed).status_code == 401
    bob.publish(f"coplay/{session_name}/in/bob", b"bob-plays-on", qos=1)
    host.inbox.wait_for(lambda m: any(x.payload == b"bob-plays-on" for x in m))


def test_emqx_config_describes_session_scoped_invite_tokens(relay: RelayService) -> None:
    """The EMQX block still verifies these tokens: same claims, acl claim, per-app prefixes."""
    import subprocess

    out = subprocess.run(
        relay.command("emqx-config"), capture_output=True, text=True, env=relay.env(), check=True
    ).stdout
    assert 'acl_claim_name = "acl"' in out
    assert 'sub = "${username}"' in out and 'cid = "${clientid}"' in out
    assert "'coplay'" in out and "'other'" in out
    assert "session" in out and "guest_token_s" in out
