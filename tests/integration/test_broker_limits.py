"""The embedded broker's per-client bounds, attacked through a real ``coplay-relay serve``.

Each test crosses one bound of :mod:`relay.service.limits` and checks what a user would
notice: the attacker's connection is closed, the other clients keep their traffic, the
counter in the relay's ``broker_status`` line moved, and nothing piles up in memory.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import mqtt_raw
from tests.support.mqtt import RawClient
from tests.support.relay_service import RelayService, running_relay

SUCCESS = "Success"
LIMITS = (
    "connect_timeout_s = 1\n"
    "max_subscriptions = 4\n"
    "max_pending_out = 16\n"
    "max_publish_per_s = 200\n"
    "status_interval_s = 0.2\n"
)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayService]:
    with running_relay(tmp_path_factory.mktemp("relay-limits"), server_extra=LIMITS) as service:
        yield service


@pytest.fixture
def connect(relay: RelayService) -> Iterator[Callable[..., RawClient]]:
    made: list[RawClient] = []

    def make(username: str, device: str) -> RawClient:
        client = RawClient(
            relay.mqtt_port,
            username,
            relay.user_token(username, device),
            client_id=relay.cid(device),
        )
        made.append(client)
        assert client.wait_connected() == SUCCESS
        return client

    yield make
    for client in made:
        client.close()


def status_lines(relay: RelayService) -> list[dict[str, Any]]:
    lines = []
    for raw in relay.log_text().splitlines():
        if '"broker_status"' in raw:
            lines.append(json.loads(raw))
    return lines


def counter(relay: RelayService, name: str) -> int:
    lines = status_lines(relay)
    return int(lines[-1][name]) if lines else 0


def wait_counter(relay: RelayService, name: str, above: int, timeout: float = 10.0) -> int:
    """Wait for a ``broker_status`` line whose ``name`` exceeds ``above``."""
    deadline = time.monotonic() + timeout
    while (value := counter(relay, name)) <= above:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} stayed at {value}")
        time.sleep(0.05)  # polling a log file: there is no event to await across processes
    return value


def rss_kb(relay: RelayService) -> int:
    assert relay.proc is not None
    for line in Path(f"/proc/{relay.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_an_oversized_publish_drops_the_client_and_reaches_nobody(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-big")
    host.subscribe(f"coplay/{session_name}/in/+")
    before = counter(relay, "oversized_packets")
    big = mqtt_raw.RawSocket(relay.mqtt_port)
    try:
        big.send(mqtt_raw.connect(relay.cid("a-big"), "alice", relay.user_token("alice", "a-big")))
        assert big.read_some()[:1] == b"\x20"  # CONNACK
        big.send(mqtt_raw.publish(f"coplay/{session_name}/in/alice", b"x" * 10_000))
        assert big.closed_within(5)
    finally:
        big.close()
    wait_counter(relay, "oversized_packets", before)
    alice = connect("alice", "a-small")
    alice.publish(f"coplay/{session_name}/in/alice", b"small", qos=1)
    got = host.inbox.wait_count(1)
    assert [m.payload for m in got] == [b"small"]


def test_an_oversized_publish_over_websocket_is_dropped_too(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-wsbig")
    host.subscribe(f"coplay/{session_name}/in/+")
    before = counter(relay, "oversized_packets")
    client = RawClient(
        relay.ws_port,
        "alice",
        relay.user_token("alice", "a-wsbig"),
        client_id=relay.cid("a-wsbig"),
        transport="websockets",
    )
    try:
        assert client.wait_connected(10) == SUCCESS
        client.client.publish(f"coplay/{session_name}/in/alice", b"x" * 10_000, qos=0)
        wait_counter(relay, "oversized_packets", before)
    finally:
        client.close()
    alice = connect("alice", "a-wssmall")
    alice.publish(f"coplay/{session_name}/in/alice", b"small", qos=1)
    assert [m.payload for m in host.inbox.wait_count(1)] == [b"small"]


def test_connects_with_60kb_usernames_cost_no_memory_and_one_log_line(
    relay: RelayService,
) -> None:
    """The attack of the report: CONNECTs with huge usernames, each a new throttle key."""
    rss_before = rss_kb(relay)
    lines_before = len(relay.log_text().splitlines())
    before = counter(relay, "oversized_packets")
    for i in range(200):
        sock = mqtt_raw.RawSocket(relay.mqtt_port)
        try:
            sock.send(mqtt_raw.connect(f"c{i}", f"u{i}" + "x" * 60_000, "not-a-token"))
            assert sock.closed_within(5)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: as good
        finally:
            sock.close()
    wait_counter(relay, "oversized_packets", before + 199)
    grown_kb = rss_kb(relay) - rss_before
    logged = [x for x in relay.log_text().splitlines()[lines_before:] if "broker_status" not in x]
    assert len(logged) <= 5, logged[:5]
    assert grown_kb < 20_000, f"RSS grew {grown_kb} kB"


def test_refused_connects_log_a_line_per_interval_whatever_the_username(
    relay: RelayService,
) -> None:
    lines_before = len(relay.log_text().splitlines())
    for i in range(100):
        sock = mqtt_raw.RawSocket(relay.mqtt_port)
        try:
            sock.send(mqtt_raw.connect(f"d{i}", f"user{i}" + "y" * 1000, "wrong"))
            assert sock.read_some()[:1] == b"\x20"  # CONNACK: refused
        finally:
            sock.close()
    refused = [x for x in relay.log_text().splitlines()[lines_before:] if "mqtt_refused" in x]
    assert 1 <= len(refused) <= 2
    assert all(len(x) < 1000 for x in refused)


def test_a_silent_socket_is_closed_after_the_connect_timeout(relay: RelayService) -> None:
    before = counter(relay, "connect_timeouts")
    silent = mqtt_raw.RawSocket(relay.mqtt_port)
    try:
        assert silent.closed_within(1 + 5)
    finally:
        silent.close()
    wait_counter(relay, "connect_timeouts", before)


def test_sockets_closed_before_connect_are_closed_and_counted(relay: RelayService) -> None:
    before = counter(relay, "closed_before_connect")
    for _ in range(20):
        sock = mqtt_raw.RawSocket(relay.mqtt_port)
        sock.send(b"\x10")  # the start of a CONNECT, then gone
        sock.close()
    wait_counter(relay, "closed_before_connect", before + 19)
    deadline = time.monotonic() + 10
    while counter(relay, "connections") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a log file
    assert counter(relay, "connections") == 0
    # and the relay closed its side: no socket of its port left in CLOSE_WAIT (half-open)
    while close_wait(relay.mqtt_port) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling /proc: there is no event to await
    assert close_wait(relay.mqtt_port) == 0


def close_wait(port: int) -> int:
    """Sockets on local ``port`` that the peer closed and we have not (TCP CLOSE_WAIT)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "08":
            count += 1
    return count


def test_subscriptions_over_the_cap_are_refused(relay: RelayService) -> None:
    codes: list[int] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=relay.cid("a-subs"))
    client.username_pw_set("alice", relay.user_token("alice", "a-subs"))

    def on_subscribe(c: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        codes.extend(int(r.value) for r in reasons)
        done.set()

    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", relay.mqtt_port)
    client.loop_start()
    try:
        client.subscribe([(f"coplay/sub{i}/out/alice", 0) for i in range(8)])
        assert done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    assert codes[:4] == [0, 0, 0, 0]
    assert codes[4:] == [0x80] * 4


def test_a_subscriber_that_never_acknowledges_is_dropped(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    """QoS 1 deliveries to a client that reads nothing and acks nothing: dropped at 16."""
    before = counter(relay, "pending_out_dropped")
    topic = f"coplay/{session_name}/out/alice"
    mute = mqtt_raw.RawSocket(relay.mqtt_port)
    try:
        mute.send(
            mqtt_raw.connect(relay.cid("a-mute"), "alice", relay.user_token("alice", "a-mute"))
        )
        assert mute.read_some()[:1] == b"\x20"
        mute.send(mqtt_raw.subscribe(1, [(topic, 1)]))
        assert mute.read_some()[:1] == b"\x90"  # SUBACK
        host = connect("streamer", "h-mute")
        for i in range(100):
            host.publish(topic, f"msg{i}".encode() * 10, qos=1)
        wait_counter(relay, "pending_out_dropped", before)
        assert mute.closed_within(10)
    finally:
        mute.close()


def test_a_publish_flood_drops_the_client_and_the_others_keep_theirs(
    relay: RelayService, connect: Callable[..., RawClient], session_name: str
) -> None:
    host = connect("streamer", "h-flood")
    host.subscribe(f"coplay/{session_name}/in/+")
    before = counter(relay, "publish_rate_dropped")
    flood = mqtt_raw.RawSocket(relay.mqtt_port)
    try:
        flood.send(
            mqtt_raw.connect(relay.cid("b-flood"), "bob", relay.user_token("bob", "b-flood"))
        )
        assert flood.read_some()[:1] == b"\x20"
        frame = mqtt_raw.publish(f"coplay/{session_name}/in/bob", b"garbage!" * 4)
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            flood.send(frame * 5000)  # 5000 PUBLISH at once; the cap is 200 a second
        assert flood.closed_within(10)
        lasted = time.monotonic() - started  # the bucket refills while the broker reads
    finally:
        flood.close()
    wait_counter(relay, "publish_rate_dropped", before)
    alice = connect("alice", "a-flood")
    alice.publish(f"coplay/{session_name}/in/alice", b"real", qos=1)
    got = host.inbox.wait_for(lambda ms: any(m.payload == b"real" for m in ms))
    # a bucket of one second's worth (200), refilled at 200/s while the flood was read
    assert len([m for m in got if m.topic.endswith("/in/bob")]) <= 200 * (1 + lasted) + 1


def test_retained_messages_on_in_topics_are_not_stored(
    relay: RelayService, connect: Callable[..., RawClient]
) -> None:
    """A guest retaining 1 kB under made-up session names: nothing kept for later."""
    before = counter(relay, "retained_refused")
    alice = connect("alice", "a-ret")
    for i in range(20):
        alice.publish(f"coplay/madeup{i}/in/alice", b"r" * 1000, qos=1, retain=True)
    wait_counter(relay, "retained_refused", before + 19)
    host = connect("streamer", "h-ret")
    host.subscribe("coplay/madeup3/in/+")
    host.publish("coplay/madeup3/host", b"online", qos=1, retain=True)  # a host's own: kept
    late = connect("bob", "b-ret")
    late.subscribe("coplay/madeup3/host")
    got = late.inbox.wait_count(1)
    assert [(m.payload, m.retain) for m in got] == [(b"online", True)]
    host.publish("coplay/madeup3/host", b"", qos=1, retain=True)
    assert host.inbox.snapshot() == []  # subscribed before the marker above went round


def test_connections_over_the_maximum_are_closed_at_once(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    small = relay_service_factory(server_extra="max_connections = 10\nstatus_interval_s = 0.2\n")
    socks = [mqtt_raw.RawSocket(small.mqtt_port) for _ in range(10)]
    try:
        wait_counter(small, "connections", 9)
        extra = mqtt_raw.RawSocket(small.mqtt_port)
        try:
            assert extra.closed_within(3)
        finally:
            extra.close()
        wait_counter(small, "connections_refused", 0)
    finally:
        for sock in socks:
            sock.close()
