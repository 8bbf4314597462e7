"""JWT authentication and the topic ACL, on the embedded broker and on a NATS cluster.

Each test that takes ``broker`` runs twice: on the embedded broker of a real
``coplay-relay serve``, and on a real 3-node NATS cluster whose logins go to
``coplay-relay nats-callout`` (:mod:`tests.support.nats_cluster`), with
clients spread over the nodes so every message there crosses nodes. The same
relay's token API mints every token for both. Tests of the embedded broker
alone pin ``broker`` to ``"embedded"``.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mqtt import RawClient
from tests.support.nats_cluster import NatsCluster
from tests.support.relay_service import RelayService, running_relay

SUCCESS = "Success"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayService]:
    """One relay for this module (tests use distinct sessions and client ids)."""
    with running_relay(tmp_path_factory.mktemp("relay")) as service:
        yield service


@dataclass(frozen=True)
class Broker:
    """Where the clients of a test log in: one MQTT (and WebSocket) port per node."""

    name: str  # "embedded" | "nats"
    ports: tuple[int, ...]
    ws_port: int
    log_text: Callable[[], str]
    refused_event: str


@pytest.fixture(scope="module", params=["embedded", "nats"])
def broker(
    request: pytest.FixtureRequest, relay: RelayService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """The embedded broker, or a 3-node NATS cluster behind the relay's auth callout."""
    if request.param == "embedded":
        yield Broker("embedded", (relay.mqtt_port,), relay.ws_port, relay.log_text, "mqtt_refused")
        return
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"), relay).start()
    try:
        ports = tuple(node.mqtt_port for node in cluster.nodes)
        yield Broker("nats", ports, cluster.nodes[1].ws_port, cluster.logs, "nats_login_refused")
    finally:
        cluster.stop()


@pytest.fixture
def connect(relay: RelayService, broker: Broker) -> Iterator[Callable[..., RawClient]]:
    """``connect(username, device, password=None, will=None)`` -> a RawClient on ``broker``.

    On a cluster each new client goes to the next node (``node=`` pins one).
    """
    made: list[RawClient] = []

    def make(
        username: str,
        device: str,
        password: str | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        client_id: str | None = None,
        node: int | None = None,
    ) -> RawClient:
        token = password if password is not None else relay.user_token(username, device)
        port = broker.ports[(len(made) if node is None else node) % len(broker.ports)]
        client = RawClient(
            port,
            username,
            token,
            client_id=client_id if client_id is not None else relay.cid(device),
            will=will,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def topic(session: str, rest: str) -> str:
    return f"coplay/{session}/{rest}"


def test_valid_user_token_connects(connect: Callable[..., RawClient]) -> None:
    assert connect("alice", "a-valid").wait_connected() == SUCCESS


def test_wrong_password_is_refused(connect: Callable[..., RawClient]) -> None:
    assert connect("alice", "a-wrong", password="not-a-token").wait_connected() != SUCCESS


def test_expired_token_is_refused(relay: RelayService, connect: Callable[..., RawClient]) -> None:
    now = int(time.time())
    expired = relay.mint(
        {
            "sub": "alice",
            "cid": relay.cid("a-exp"),
            "role": "guest",
            "iat": now - 120,
            "exp": now - 60,
            "acl": {"pub": ["coplay/+/in/alice"], "sub": []},
        }
    )
    assert connect("alice", "a-exp", password=expired).wait_connected() != SUCCESS


def test_token_signed_with_another_secret_is_refused(
    relay: RelayService, connect: Callable[..., RawClient]
) -> None:
    import jwt

    now = int(time.time())
    forged = jwt.encode(
        {
            "sub": "alice",
            "cid": relay.cid("a-forged"),
            "role": "host",
            "iat": now,
            "exp": now + 600,
            "acl": {"pub": ["#"], "sub": ["#"]},
        },
        "x" * 48,
        algorithm="HS256",
    )
    assert connect("alice", "a-forged", password=forged).wait_connected() != SUCCESS


def test_alices_token_used_as_bob_is_refused(
    relay: RelayService, connect: Callable[..., RawClient]
) -> None:
    token = relay.user_token("alice", "a-as-bob")
    assert connect("bob", "a-as-bob", password=token).wait_connected() != SUCCESS


def test_token_used_with_another_client_id_is_refused(
    relay: RelayService, connect: Callable[..., RawClient]
) -> None:
    token = relay.user_token("alice", "a-cid1")
    client = connect("alice", "a-cid1", password=token, client_id=relay.cid("a-cid2"))
    assert client.wait_connected() != SUCCESS


def test_app_token_is_not_an_mqtt_password(
    relay: RelayService, connect: Callable[..., RawClient]
) -> None:
    assert connect("alice", "a-app", password=relay.app_token()).wait_connected() != SUCCESS


def test_guest_cannot_publish_on_another_users_in_topic(
    connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-pub")
    bob = connect("bob", "b-pub")
    assert host.wait_connected() == SUCCESS and bob.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"))
    bob.publish(topic(session_name, "in/alice"), b"forged", qos=1)
    bob.publish(topic(session_name, "in/bob"), b"mine", qos=1)
    got = host.inbox.wait_for(lambda m: any(x.payload == b"mine" for x in m))
    assert [m.topic for m in got] == [topic(session_name, "in/bob")]


def test_guest_subscribing_to_every_input_receives_nothing(
    connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-spy")
    alice = connect("alice", "a-spy")
    bob = connect("bob", "b-spy")
    for client in (host, alice, bob):
        assert client.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"))
    bob.subscribe(topic(session_name, "in/+"))
    bob.subscribe("coplay/#")
    bob.subscribe("#")
    bob.subscribe(topic(session_name, "out/bob"))  # allowed: the marker's way in
    alice.publish(topic(session_name, "in/alice"), b"secret-input", qos=1)
    host.inbox.wait_count(1)
    # the broker has routed alice's frame (the host got it); a marker bob may receive,
    # sent after it, arrives after any copy of it that the broker queued for bob
    host.publish(topic(session_name, "out/bob"), b"marker", qos=1)
    got = bob.inbox.wait_for(lambda ms: any(m.payload == b"marker" for m in ms))
    assert [m.payload for m in got] == [b"marker"]


def test_host_token_reads_inputs_and_writes_outputs_and_host_state(
    connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-rw")
    alice = connect("alice", "a-rw")
    assert host.wait_connected() == SUCCESS and alice.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"))
    alice.subscribe(topic(session_name, "out/alice"))
    alice.subscribe("coplay/+/host")
    alice.publish(topic(session_name, "in/alice"), b"hello", qos=1)
    assert host.inbox.wait_count(1)[0].payload == b"hello"
    host.publish(topic(session_name, "out/alice"), b"welcome", qos=1)
    host.publish(topic(session_name, "host"), b"state", qos=1)
    got = alice.inbox.wait_count(2)
    assert {(m.topic, m.payload) for m in got} == {
        (topic(session_name, "out/alice"), b"welcome"),
        (topic(session_name, "host"), b"state"),
    }


def test_qos0_publish_reaches_a_qos1_subscriber_at_qos0(
    connect: Callable[..., RawClient], session_name: str
) -> None:
    """amqtt bug 5: deliveries used the subscription QoS, upgrading every Input frame."""
    host = connect("streamer", "h-qos")
    alice = connect("alice", "a-qos")
    assert host.wait_connected() == SUCCESS and alice.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"), qos=1)
    alice.publish(topic(session_name, "in/alice"), b"input", qos=0)
    alice.publish(topic(session_name, "in/alice"), b"hello", qos=1)
    got = host.inbox.wait_count(2)
    assert [(m.payload, m.qos) for m in got] == [(b"input", 0), (b"hello", 1)]


def test_retained_host_state_reaches_late_subscribers_only(
    connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-ret")
    assert host.wait_connected() == SUCCESS
    host.publish(topic(session_name, "host"), b"online", qos=1, retain=True)
    alice = connect("alice", "a-ret")
    assert alice.wait_connected() == SUCCESS
    alice.subscribe(topic(session_name, "host"))
    got = alice.inbox.wait_count(1)
    assert (got[0].payload, got[0].retain) == (b"online", True)
    # a newcomer that never subscribed to the host topic must not be sent it (amqtt bug 3)
    carol = connect("carol", "c-ret")
    assert carol.wait_connected() == SUCCESS
    carol.subscribe(topic(session_name, "out/carol"))
    host.publish(topic(session_name, "out/carol"), b"marker", qos=1)
    got = carol.inbox.wait_count(1)
    assert [m.payload for m in got] == [b"marker"]
    host.publish(topic(session_name, "host"), b"", qos=1, retain=True)  # clear it


def test_last_will_is_delivered_on_abrupt_disconnect(
    connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-will")
    assert host.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"))
    alice = connect("alice", "a-will", will=(topic(session_name, "in/alice"), b"bye", 1, False))
    assert alice.wait_connected() == SUCCESS
    alice.drop()
    got = host.inbox.wait_count(1, timeout=10)
    assert (got[0].topic, got[0].payload) == (topic(session_name, "in/alice"), b"bye")


def test_will_on_another_users_topic_is_never_delivered(
    broker: Broker, connect: Callable[..., RawClient], session_name: str
) -> None:
    """The embedded broker refuses such a CONNECT; NATS admits it and drops the will."""
    host = connect("streamer", "h-fwill", node=0)
    assert host.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"))
    bob = connect("bob", "b-will", will=(topic(session_name, "in/alice"), b"bye", 1, False), node=1)
    admitted = bob.wait_connected() == SUCCESS
    if broker.name == "embedded":
        assert not admitted
    carol = connect(
        "carol", "c-will", will=(topic(session_name, "in/carol"), b"bye", 1, False), node=1
    )
    assert carol.wait_connected() == SUCCESS
    if admitted:
        bob.drop()
    carol.drop()  # after bob: carol's will arriving means bob's had its chance
    host.inbox.wait_for(lambda m: any(x.topic.endswith("/in/carol") for x in m), timeout=10)
    time.sleep(0.3)  # nothing to await: asserting an absence
    assert [m.topic for m in host.inbox.snapshot()] == [topic(session_name, "in/carol")]


def test_refused_connect_does_not_disturb_the_client_id_it_names(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    """amqtt bug 1: a bad CONNECT with a live client id used to drop that client's session."""
    alice = connect("alice", "a-victim")
    host = connect("streamer", "h-victim")
    assert alice.wait_connected() == SUCCESS and host.wait_connected() == SUCCESS
    alice.subscribe(topic(session_name, "out/alice"))
    intruder = connect("alice", "a-victim", password="garbage")
    assert intruder.wait_connected() != SUCCESS
    intruder.close()
    host.publish(topic(session_name, "out/alice"), b"still-here", qos=1)
    assert alice.inbox.wait_count(1)[0].payload == b"still-here"


def _connect_packet(
    client_id: str, username: str, password: str, keepalive: int, will: tuple[str, bytes]
) -> bytes:
    def text(value: str | bytes) -> bytes:
        raw = value.encode() if isinstance(value, str) else value
        return struct.pack("!H", len(raw)) + raw

    flags = 0x80 | 0x40 | 0x04 | 0x02 | (1 << 3)  # user, password, will (QoS 1), clean session
    variable = text("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    payload = text(client_id) + text(will[0]) + text(will[1]) + text(username) + text(password)
    body = variable + payload
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return bytes([0x10]) + encoded + body


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_silent_client_is_dropped_after_its_keepalive_and_its_will_sent(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    """amqtt bug 4 (Yakifo/amqtt#308): a frozen client used to stay connected forever."""
    host = connect("streamer", "h-silent")
    assert host.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"))
    token = relay.user_token("alice", "a-silent")
    with socket.create_connection(("127.0.0.1", relay.mqtt_port), timeout=10) as sock:
        will = (topic(session_name, "in/alice"), b"gone")
        sock.sendall(_connect_packet(relay.cid("a-silent"), "alice", token, 1, will))
        assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        started = time.monotonic()
        got = host.inbox.wait_count(1, timeout=10)  # we send nothing more: silent
        waited = time.monotonic() - started
    assert (got[0].topic, got[0].payload) == will
    assert 1.0 <= waited < 8.0


def test_websocket_listener_accepts_a_paho_websocket_client(
    relay: RelayService, broker: Broker, connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-ws", node=0)
    assert host.wait_connected() == SUCCESS
    host.subscribe(topic(session_name, "in/+"))
    client = RawClient(
        broker.ws_port,
        "alice",
        relay.user_token("alice", "a-ws"),
        client_id=relay.cid("a-ws"),
        transport="websockets",
    )
    try:
        assert client.wait_connected(10) == SUCCESS
        client.publish(topic(session_name, "in/alice"), b"via-ws", qos=1)
        assert host.inbox.wait_count(1)[0].payload == b"via-ws"
    finally:
        client.close()


def test_tls_on_api_and_broker_when_a_certificate_is_configured(
    relay_service_factory: Callable[..., RelayService], tmp_path: Path, session_name: str
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    relay = relay_service_factory(tls_cert=str(cert), tls_key=str(key), ws=False)
    assert relay.api_url.startswith("https://")
    token = relay.user_token("alice", "a-tls")  # over HTTPS, verified against the cert
    client = RawClient(
        relay.mqtt_port, "alice", token, client_id=relay.cid("a-tls"), ca_file=str(cert)
    )
    try:
        assert client.wait_connected(10) == SUCCESS
    finally:
        client.close()


def test_broker_log_never_shows_a_token(
    relay: RelayService, broker: Broker, connect: Callable[..., RawClient]
) -> None:
    token = relay.user_token("alice", "a-log")
    assert connect("alice", "a-log", password=token).wait_connected() == SUCCESS
    assert connect("bob", "a-log", password=token).wait_connected() != SUCCESS
    log = broker.log_text()
    assert broker.refused_event in log
    assert token not in log and token.split(".")[2] not in log
    assert relay.jwt_secret not in log
