"""The MQTT link against a real Mosquitto: connect, reconnect, credentials, Last Will, stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relay.errors import AuthError, ConfigError, TokenApiError
from relay.link import Link
from relay.linkstatus import LinkState, LinkStatus, Message
from relay.procs import wait_listening
from relay.tokens import StaticCredentials
from tests.support.link_helpers import (
    Recorder,
    ScriptedCredentials,
    StatusLog,
    add_tls_listener,
    link_settings,
)
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient

WAIT = 15.0  # generous: the machine is shared and loaded


@pytest.fixture
def make_link() -> Iterator[Callable[..., Link]]:
    """Factory for started links; every one is stopped at the end."""
    made: list[Link] = []

    def make(broker: Mosquitto, username: str, *, credentials=None, start=True, **kwargs) -> Link:  # type: ignore[no-untyped-def]
        overrides = dict(kwargs.pop("settings", {}))
        url = overrides.pop("broker_url", broker.url)
        settings = link_settings(url, username, broker.passwords[username], **overrides)
        kwargs.setdefault("on_message", Recorder())
        kwargs.setdefault("reconnect_min_s", 0.1)
        kwargs.setdefault("reconnect_max_s", 1.0)
        link = Link(settings, credentials or StaticCredentials(settings), **kwargs)
        made.append(link)
        if start:
            link.start()
        return link

    yield make
    for link in made:
        link.stop(timeout=1.0)


def test_connect_publish_subscribe(
    mosquitto: Mosquitto, make_link: Callable[..., Link], prefix: str
) -> None:
    """Host and guest links connect with config passwords and exchange messages both ways."""
    host_inbox, guest_inbox = Recorder(), Recorder()
    connected = threading.Event()
    statuses = StatusLog()
    host = make_link(
        mosquitto,
        "streamer",
        on_message=host_inbox,
        subscriptions=[(f"{prefix}/friday/in/+", 0)],
        on_connect=connected.set,
        on_status=statuses,
    )
    guest = make_link(
        mosquitto,
        "alice",
        on_message=guest_inbox,
        subscriptions=[(f"{prefix}/friday/out/alice", 1)],
    )
    assert host.wait_connected(WAIT) and guest.wait_connected(WAIT)
    assert connected.is_set()
    assert statuses.states()[-1] is LinkState.CONNECTED
    assert host.status.state is LinkState.CONNECTED and host.failure is None

    assert guest.publish(f"{prefix}/friday/in/alice", b"\x91\x01")
    got = host_inbox.wait_payload(b"\x91\x01")
    assert got[0].topic == f"{prefix}/friday/in/alice" and not got[0].retained

    assert host.publish(f"{prefix}/friday/out/alice", b"welcome", qos=1)
    assert guest_inbox.wait_payload(b"welcome")[0].topic == f"{prefix}/friday/out/alice"


def test_mqtt5_connects(mosquitto: Mosquitto, make_link: Callable[..., Link], prefix: str) -> None:
    """mqtt_version = "5" speaks MQTT 5 to the same broker."""
    inbox = Recorder()
    link = make_link(
        mosquitto,
        "streamer",
        on_message=inbox,
        subscriptions=[(f"{prefix}/s/in/+", 0)],
        settings={"mqtt_version": "5"},
    )
    assert link.wait_connected(WAIT)
    alice = make_link(mosquitto, "alice", settings={"mqtt_version": "5"})
    assert alice.wait_connected(WAIT)
    assert alice.publish(f"{prefix}/s/in/alice", b"v5")
    inbox.wait_payload(b"v5")


def test_callback_exceptions_are_counted_and_the_link_survives(
    mosquitto: Mosquitto, make_link: Callable[..., Link], prefix: str
) -> None:
    """A message handler and an on_status that raise: each exception is counted in
    status.callback_errors, the link stays connected and later messages are still handled."""
    inbox = Recorder()

    def handler(topic: str, payload: bytes, retained: bool) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        inbox(topic, payload, retained)

    def on_status(status: LinkStatus) -> None:
        raise ValueError("status bug")

    host = make_link(
        mosquitto,
        "streamer",
        on_message=handler,
        subscriptions=[(f"{prefix}/s/in/+", 1)],
        on_status=on_status,
    )
    guest = make_link(mosquitto, "alice")
    assert host.wait_connected(WAIT) and guest.wait_connected(WAIT)
    after_connect = host.status.callback_errors
    assert after_connect >= 1  # on_status raised when the state became CONNECTED
    for _ in range(3):
        assert guest.publish(f"{prefix}/s/in/alice", b"boom", qos=1)
    assert guest.publish(f"{prefix}/s/in/alice", b"after", qos=1)
    inbox.wait_payload(b"after")  # same publisher, same topic, QoS 1: after the three booms
    assert host.status.callback_errors == after_connect + 3
    assert host.status.state is LinkState.CONNECTED


def test_tcp_nodelay_is_set(mosquitto: Mosquitto, make_link: Callable[..., Link]) -> None:
    """The link's socket has Nagle off (paho leaves it on)."""
    link = make_link(mosquitto, "alice")
    assert link.wait_connected(WAIT)
    sock = link.socket()
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_reconnects_and_resubscribes_after_broker_restart(
    private_mosquitto: Mosquitto, make_link: Callable[..., Link], prefix: str
) -> None:
    """Broker killed and restarted: RECONNECTING, then CONNECTED with subscriptions restored."""
    inbox = Recorder()
    statuses = StatusLog()
    connects = []
    link = make_link(
        private_mosquitto,
        "streamer",
        on_message=inbox,
        subscriptions=[(f"{prefix}/friday/in/+", 1)],
        on_status=statuses,
        on_connect=lambda: connects.append(1),
    )
    assert link.wait_connected(WAIT)
    private_mosquitto.kill()
    assert link.wait_state([LinkState.RECONNECTING], WAIT).state is LinkState.RECONNECTING
    assert not link.publish(f"{prefix}/friday/out/alice", b"while down", qos=1)
    private_mosquitto.start()
    assert link.wait_connected(WAIT)
    assert len(connects) == 2
    states = statuses.states()
    assert states.index(LinkState.RECONNECTING) < len(states) - 1
    assert states[-1] is LinkState.CONNECTED

    alice = RawClient(private_mosquitto.port, "alice", private_mosquitto.passwords["alice"])
    try:
        alice.wait_connected()
        alice.publish(f"{prefix}/friday/in/alice", b"after restart", qos=1)
        inbox.wait_payload(b"after restart")
    finally:
        alice.close()


def test_refused_password_is_refreshed_once(
    mosquitto: Mosquitto, make_link: Callable[..., Link]
) -> None:
    """The broker refuses the first password: exactly one refresh, then connected."""
    creds = ScriptedCredentials(
        "alice", "dev-a@coplay", ["wrong-password", mosquitto.passwords["alice"]]
    )
    statuses = StatusLog()
    link = make_link(mosquitto, "alice", credentials=creds, on_status=statuses)
    assert link.wait_connected(WAIT)
    assert creds.refreshes == 1
    assert link.failure is None
    assert any("fetching new credentials" in s.reason for s in statuses.seen)


def test_password_refused_for_good_ends_refused(
    mosquitto: Mosquitto, make_link: Callable[..., Link]
) -> None:
    """Password refused every time: REFUSED (AuthError) after max_auth_retries, no endless loop."""
    creds = ScriptedCredentials("alice", "dev-a@coplay", ["wrong-password"])
    link = make_link(mosquitto, "alice", credentials=creds, max_auth_retries=2)
    assert not link.wait_connected(WAIT)
    assert link.status.state is LinkState.REFUSED
    assert isinstance(link.failure, AuthError)
    assert link.failure.exit_code == 77
    assert "wrong-password" not in str(link.failure)
    assert creds.refreshes == 2
    assert link.wait_ended(WAIT)  # the network loop ended: no endless reconnecting
    assert creds.refreshes == 2


def test_app_credentials_refused_stops_at_once(
    mosquitto: Mosquitto, make_link: Callable[..., Link]
) -> None:
    """An AuthError from the credential source (app secret refused) ends the link: REFUSED."""
    creds = ScriptedCredentials("alice", "dev-a@coplay", [AuthError("app credentials refused")])
    link = make_link(mosquitto, "alice", credentials=creds)
    assert link.wait_state([LinkState.REFUSED], WAIT).state is LinkState.REFUSED
    assert isinstance(link.failure, AuthError)
    assert creds.gets == 1


def test_token_api_down_is_retried(mosquitto: Mosquitto, make_link: Callable[..., Link]) -> None:
    """Credentials unavailable for a while: status says so, the link keeps trying, then connects."""
    creds = ScriptedCredentials(
        "alice",
        "dev-a@coplay",
        [TokenApiError("token API unreachable"), mosquitto.passwords["alice"]],
    )
    statuses = StatusLog()
    link = make_link(mosquitto, "alice", credentials=creds, on_status=statuses)
    assert link.wait_connected(WAIT)
    assert creds.gets == 2
    assert any("credentials unavailable" in s.reason for s in statuses.seen)


def test_last_will_is_delivered_when_connection_is_cut(
    mosquitto: Mosquitto,
    make_link: Callable[..., Link],
    mqtt_client: Callable[..., RawClient],
    prefix: str,
) -> None:
    """The caller's Last Will reaches subscribers when the link's connection drops uncleanly."""
    watcher = mqtt_client("streamer")
    watcher.wait_connected()
    watcher.subscribe(f"{prefix}/friday/in/+")
    link = make_link(mosquitto, "alice", will=Message(f"{prefix}/friday/in/alice", b"bye", qos=1))
    assert link.wait_connected(WAIT)
    sock = link.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)
    got = watcher.inbox.wait_count(1, WAIT)
    assert got[0].payload == b"bye"
    assert link.wait_connected(WAIT)  # and the link comes back by itself


def test_publish_while_disconnected_returns_false_and_queues_nothing(
    private_mosquitto: Mosquitto, make_link: Callable[..., Link], prefix: str
) -> None:
    """Before start and during an outage publish is refused; nothing stale arrives later."""
    link = make_link(private_mosquitto, "alice", start=False)
    assert not link.publish(f"{prefix}/friday/in/alice", b"early", qos=1)
    link.start()
    assert link.wait_connected(WAIT)
    private_mosquitto.kill()
    assert link.wait_state([LinkState.RECONNECTING], WAIT).state is LinkState.RECONNECTING
    assert not link.publish(f"{prefix}/friday/in/alice", b"stale", qos=1)
    assert not link.publish(f"{prefix}/friday/in/alice", b"stale0", qos=0)
    private_mosquitto.start()
    host = RawClient(private_mosquitto.port, "streamer", private_mosquitto.passwords["streamer"])
    try:
        host.wait_connected()
        host.subscribe(f"{prefix}/friday/in/+")
        assert link.wait_connected(WAIT)
        assert link.publish(f"{prefix}/friday/in/alice", b"fresh", qos=1)
        got = host.inbox.wait_count(1, WAIT)
        assert [m.payload for m in got] == [b"fresh"]
    finally:
        host.close()


def test_stop_delivers_final_messages_without_last_will(
    mosquitto: Mosquitto,
    make_link: Callable[..., Link],
    mqtt_client: Callable[..., RawClient],
    prefix: str,
) -> None:
    """stop(final=...) delivers QoS 1 finals, disconnects cleanly (no Last Will), state STOPPED."""
    watcher = mqtt_client("streamer")
    watcher.wait_connected()
    watcher.subscribe(f"{prefix}/friday/in/+")
    statuses = StatusLog()
    link = make_link(
        mosquitto,
        "alice",
        will=Message(f"{prefix}/friday/in/alice", b"will", qos=1),
        on_status=statuses,
    )
    assert link.wait_connected(WAIT)
    link.stop(final=[Message(f"{prefix}/friday/in/alice", b"final", qos=1)], timeout=WAIT)
    assert link.status.state is LinkState.STOPPED
    assert statuses.states()[-1] is LinkState.STOPPED
    got = watcher.inbox.wait_count(1, WAIT)
    assert got[0].payload == b"final"
    # a marker after the stop: had the will been sent, it would have arrived before this
    marker = mqtt_client("alice")
    marker.wait_connected()
    marker.publish(f"{prefix}/friday/in/alice", b"marker", qos=1)
    got = watcher.inbox.wait_for(lambda m: any(x.payload == b"marker" for x in m), WAIT)
    assert [m.payload for m in got] == [b"final", b"marker"]
    assert link.wait_ended(0.0)
    assert not link.publish(f"{prefix}/friday/in/alice", b"late")


def test_stop_without_connection_is_prompt(make_link: Callable[..., Link], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A link that never reached its broker stops at once, state STOPPED."""
    broker = Mosquitto(tmp_path / "never")
    broker.passwords = {"alice": "x"}
    link = make_link(broker, "alice")
    assert not link.wait_connected(0.5)
    assert link.status.state is LinkState.STARTING
    link.stop(timeout=1.0)
    assert link.status.state is LinkState.STOPPED
    assert link.wait_ended(0.0)


@pytest.fixture
def tls_mosquitto(tmp_path: Path) -> Iterator[tuple[Mosquitto, int, Path]]:
    """A Mosquitto with a TLS listener signed by a throwaway CA: (broker, TLS port, CA file)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.prepare()
    port, ca = add_tls_listener(broker, tmp_path / "tls")
    broker.start()
    try:
        wait_listening(port)
        yield broker, port, ca
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("with_ca", "verify", "connects"),
    [(True, True, True), (False, True, False), (False, False, True)],
    ids=["ca-file", "unknown-ca-refused", "verify-off"],
)
def test_mqtts(
    tls_mosquitto: tuple[Mosquitto, int, Path],
    make_link: Callable[..., Link],
    with_ca: bool,
    verify: bool,
    connects: bool,
) -> None:
    """mqtts:// verifies the broker by default: its CA file works, an unknown CA does not."""
    broker, port, ca = tls_mosquitto
    settings = {
        "broker_url": f"mqtts://localhost:{port}",
        "ca_file": str(ca) if with_ca else "",
        "tls_verify": verify,
    }
    link = make_link(broker, "alice", settings=settings)
    if connects:
        assert link.wait_connected(WAIT), link.status
        sock = link.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    else:
        status = link.wait_state([LinkState.CONNECTED], 2.0)
        assert status.state is LinkState.STARTING
        assert status.reason == "broker unreachable"


def test_missing_ca_file_is_config_error(tmp_path: Path) -> None:
    settings = link_settings(
        "mqtts://localhost:8883", "alice", "pw1234", ca_file=str(tmp_path / "none.pem")
    )
    with pytest.raises(ConfigError, match="ca_file"):
        Link(settings, StaticCredentials(settings), on_message=Recorder())
