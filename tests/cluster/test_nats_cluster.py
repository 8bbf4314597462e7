"""The scale path for real: a 3-node NATS cluster, the relay's auth callout, a host and a guest.

Every test gets its own relay (token API), its own cluster on free loopback
ports and its own callout process (:mod:`tests.support.nats_cluster`), so a
test may kill a node or the callout; the fixture stops everything it started.
The ACL refusals themselves run on this cluster in the shared broker suite
(``tests/integration/test_relay_broker.py``).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.frames import Button
from tests.support.cluster_clients import cluster_guest, cluster_host
from tests.support.host_process import Line
from tests.support.mqtt import RawClient
from tests.support.nats_cluster import NatsCluster, NatsNodeProcess, nats_server_binary
from tests.support.relay_service import ROOT, RelayService
from tests.support.stack import StackGuest, StackHost, press_and_see

pytestmark = pytest.mark.slow

SUCCESS = "Success"
RESUME_BOUND_S = 3.0  # the bound: inputs flow again within 3 s of losing a node
A = 1 << int(Button.A)
FLOOD = 50  # refused logins in a row


@pytest.fixture
def cluster(relay_service: RelayService, tmp_path: Path) -> Iterator[NatsCluster]:
    """Three NATS nodes and the callout for this test's relay; all stopped at the end."""
    made = NatsCluster(tmp_path / "nats", relay_service).start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def processes() -> Iterator[list[StackHost | StackGuest]]:
    """Hosts and guests a test starts; killed at the end if still running."""
    started: list[StackHost | StackGuest] = []
    yield started
    for proc in reversed(started):
        if isinstance(proc, StackGuest):
            proc.close()
        elif proc.alive():
            proc.stop(timeout=10)


def _first_after(lines: list[Line], mark: int, reason: str, **match: object) -> Line:
    for line in lines[mark:]:
        if line["reason"] == reason and all(line.get(k) == v for k, v in match.items()):
            return line
    raise AssertionError(f"no {reason} line after {mark}: {lines[mark:][-5:]}")


def test_guest_on_one_node_plays_on_a_host_on_another(
    relay_service: RelayService,
    cluster: NatsCluster,
    processes: list[StackHost | StackGuest],
    tmp_path: Path,
) -> None:
    """Host on n1, guest on n2: the guest is seated and its presses reach the host's pad."""
    n1, n2, n3 = cluster.nodes
    host = cluster_host(tmp_path / "host", relay_service, [n1.mqtt_url, n2.mqtt_url])
    processes.append(host)
    host.wait_ready()
    guest = cluster_guest(tmp_path / "guest", relay_service, [n2.mqtt_url, n3.mqtt_url])
    processes.append(guest)
    assert guest.wait_seated() == 2
    press_and_see(guest, host, "A")
    press_and_see(guest, host, "Y")
    assert host.device_id + "@coplay" in n1.mqtt_clients()
    assert any(cid.startswith("g") for cid in n2.mqtt_clients())
    assert not any(cid.startswith("g") for cid in n1.mqtt_clients())


SESSIONS_STREAM = "$MQTT_sess"  # every MQTT CONNECT on NATS reads and writes it
RETAINED_STREAM = "$MQTT_rmsgs"  # a SUBSCRIBE looks up retained messages in it
RAFT_BOUND_S = 30.0  # a dead leader: NATS elects a new one after 4-9 s (fixed), more when busy


def _hold_a_then_lose(
    cluster: NatsCluster,
    relay: RelayService,
    processes: list[StackHost | StackGuest],
    tmp_path: Path,
    *,
    host_on: NatsNodeProcess,
    guest_on: NatsNodeProcess,
    victim: NatsNodeProcess,
) -> float:
    """Guest holds A; ``victim`` is SIGKILLed; returns the seconds until A is applied again.

    Also asserts the pad went neutral in between, and that host and guest ended up
    connected to surviving nodes. Each client's URL list starts with its node and
    goes on to the others.
    """

    def order(first: NatsNodeProcess) -> list[str]:
        rest = [n for n in cluster.nodes if n is not first]
        if victim in rest:  # fail over to a node that lives
            rest.remove(victim)
            rest.append(victim)
        return [first.mqtt_url] + [n.mqtt_url for n in rest]

    host = cluster_host(tmp_path / "host", relay, order(host_on))
    processes.append(host)
    host.wait_ready()
    guest = cluster_guest(tmp_path / "guest", relay, order(guest_on))
    processes.append(guest)
    guest.wait_seated()
    guest.send(press="A")  # held: every keyframe carries it
    host.wait_lines("input", buttons=A)
    mark = len(host.lines())
    killed_ns = time.monotonic_ns()
    victim.kill()
    stale = host.wait_lines("stale", after=mark)[0]
    assert stale["buttons"] == 0 and stale["axes"] == [0, 0, 0, 0, 0, 0]
    after_stale = mark + host.lines()[mark:].index(stale) + 1
    host.wait_lines("input", after=after_stale, buttons=A, timeout=RAFT_BOUND_S + 5)
    resumed = _first_after(host.lines(), after_stale, "input")
    assert resumed["buttons"] == A  # the first state after the outage is the held A
    survivors = [cid for n in cluster.nodes if n is not victim for cid in n.mqtt_clients()]
    assert host.device_id + "@coplay" in survivors
    assert any(cid.startswith("g") for cid in survivors)
    guest.send(release="A")
    host.wait_lines("input", after=after_stale, buttons=0)
    return (resumed["t_ns"] - killed_ns) / 1e9


def test_losing_the_guests_node_goes_neutral_and_inputs_resume_within_3_s(
    relay_service: RelayService,
    cluster: NatsCluster,
    processes: list[StackHost | StackGuest],
    tmp_path: Path,
) -> None:
    """The guest's node dies: neutral, then A again within 3 s.

    The node is one that leads neither of the JetStream streams a reconnecting
    guest needs (MQTT sessions for its CONNECT, retained messages for its
    SUBSCRIBE); losing one that does is the next test.
    """
    leaders = cluster.leaders()
    busy = {leaders[SESSIONS_STREAM], leaders[RETAINED_STREAM]}
    spare = [n for n in cluster.nodes if n.node.name not in busy]
    guest_on = spare[0]
    host_on = next(n for n in cluster.nodes if n is not guest_on)
    waited = _hold_a_then_lose(
        cluster, relay_service, processes, tmp_path,
        host_on=host_on, guest_on=guest_on, victim=guest_on,
    )  # fmt: skip
    assert waited < RESUME_BOUND_S, f"inputs resumed {waited:.2f} s after the guest's node died"


def test_losing_the_hosts_node_is_survived(
    relay_service: RelayService,
    cluster: NatsCluster,
    processes: list[StackHost | StackGuest],
    tmp_path: Path,
) -> None:
    """The host's node dies: the host reconnects to another node and the guest plays on."""
    leaders = cluster.leaders()
    host_on = next(n for n in cluster.nodes if n.node.name != leaders[SESSIONS_STREAM])
    guest_on = next(n for n in cluster.nodes if n is not host_on)
    waited = _hold_a_then_lose(
        cluster, relay_service, processes, tmp_path,
        host_on=host_on, guest_on=guest_on, victim=host_on,
    )  # fmt: skip
    assert waited < RAFT_BOUND_S


def test_losing_the_node_leading_mqtt_sessions_is_survived(
    relay_service: RelayService,
    cluster: NatsCluster,
    processes: list[StackHost | StackGuest],
    tmp_path: Path,
) -> None:
    """The node leading NATS's MQTT session stream dies under the guest.

    New MQTT connects wait for NATS to elect a new leader, so this takes longer
    than 3 s; the pad stays neutral meanwhile and play resumes by itself.
    """
    leader = cluster.node(cluster.leaders()[SESSIONS_STREAM])
    host_on = next(n for n in cluster.nodes if n is not leader)
    waited = _hold_a_then_lose(
        cluster, relay_service, processes, tmp_path,
        host_on=host_on, guest_on=leader, victim=leader,
    )  # fmt: skip
    assert waited < RAFT_BOUND_S


def test_callout_down_refuses_new_logins_then_admits_them_again(
    relay_service: RelayService, cluster: NatsCluster
) -> None:
    """Without the callout nobody new gets in (connected clients stay); restarted, logins work."""
    callout = cluster.callout
    assert callout is not None
    ports = [n.mqtt_port for n in cluster.nodes]
    made: list[RawClient] = []

    def login(user: str, device: str, node: int) -> RawClient:
        token = relay_service.user_token(user, device)
        client = RawClient(ports[node], user, token, client_id=relay_service.cid(device))
        made.append(client)
        return client

    try:
        host = login("streamer", "h-stay", 0)
        assert host.wait_connected(10) == SUCCESS
        host.subscribe("coplay/s1/in/+")
        callout.kill()
        assert login("alice", "a-down", 1).wait_connected(15) != SUCCESS
        assert login("bob", "b-down", 0).wait_connected(15) != SUCCESS
        callout.start()
        alice = login("alice", "a-up", 1)
        assert alice.wait_connected(10) == SUCCESS
        alice.publish("coplay/s1/in/alice", b"after-restart", qos=1)
        assert host.inbox.wait_count(1)[0].payload == b"after-restart"
    finally:
        for client in made:
            client.close()


def test_invited_guest_logs_in_until_its_invite_is_revoked(
    relay_service: RelayService, cluster: NatsCluster
) -> None:
    """A friend's invite token plays across nodes; once revoked, it is refused at login."""
    n1, n2, _ = cluster.nodes
    code = relay_service.invite("alice", "s1")["invite"]
    redeemed = relay_service.redeem(code).json()["body"]
    token = relay_service.friend_token(redeemed, "f-inv")
    cid = f"f-inv@{redeemed['app_id']}"
    made: list[RawClient] = []

    def login(port: int, user: str, password: str, client_id: str) -> RawClient:
        client = RawClient(port, user, password, client_id=client_id)
        made.append(client)
        return client

    try:
        host = login(
            n1.mqtt_port, "streamer", relay_service.host_token("h-inv"), relay_service.cid("h-inv")
        )
        assert host.wait_connected(10) == SUCCESS
        host.subscribe("coplay/s1/in/+")
        guest = login(n2.mqtt_port, "alice", token, cid)
        assert guest.wait_connected(10) == SUCCESS
        guest.publish("coplay/s1/in/alice", b"invited", qos=1)
        assert host.inbox.wait_count(1)[0].payload == b"invited"
        assert relay_service.revoke("alice", "s1").status_code == 200
        again = login(n2.mqtt_port, "alice", token, cid)
        assert again.wait_connected(10) != SUCCESS
        assert "invite revoked or expired" in cluster.logs()
    finally:
        for client in made:
            client.close()


@dataclass
class ClusterRelay(RelayService):
    """A relay whose redeems hand out a cluster node (``[server] public_broker_url``)."""

    public_broker_url: str = ""

    def write_config(self) -> Path:
        path = super().write_config()
        if self.public_broker_url:
            line = f'[server]\npublic_broker_url = "{self.public_broker_url}"\n'
            path.write_text(path.read_text().replace("[server]\n", line, 1))
        return path


def test_a_friend_joining_with_a_link_plays_on_another_node(tmp_path: Path) -> None:
    """``coplay-host invite`` -> ``coplay-guest join LINK`` on n2, the host on n1: it plays."""
    relay = ClusterRelay(tmp_path / "relay", guest_tokens="invite")
    cluster = NatsCluster(tmp_path / "nats", relay)
    n1, n2, n3 = cluster.nodes
    relay.public_broker_url = n2.mqtt_url
    host: StackHost | None = None
    guest: StackGuest | None = None
    try:
        relay.start()
        cluster.start()
        host = cluster_host(tmp_path / "host", relay, [n1.mqtt_url, n3.mqtt_url])
        host.wait_ready()
        env = {**os.environ, **host.extra_env, "XDG_STATE_HOME": str(host.workdir / "state"),
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        argv = [
            sys.executable,
            "-m",
            "host.cli",
            "invite",
            "alice",
            "--config",
            str(host.config_path),
        ]
        made = subprocess.run(
            argv,
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        link = made.stdout.strip()
        workdir = tmp_path / "friend"
        workdir.mkdir()
        guest = StackGuest(
            workdir / "no-config", "", workdir,
            args=("--log-level", "debug"), command=("join", link, "--source", "virtual"),
            clean_env=True,
        )  # fmt: skip
        assert guest.wait_seated() == 2
        press_and_see(guest, host, "B")
        assert len(n2.mqtt_clients()) == 1  # the friend, on the node its redeem named
        assert n1.mqtt_clients() == [host.device_id + "@coplay"]
    finally:
        if guest is not None:
            guest.close()
        if host is not None and host.alive():
            host.stop(timeout=10)
        cluster.stop()
        relay.stop()
        relay.kill()


def _plain_nats_login(port: int, user: str, password: str) -> bytes:
    """Log in as a plain NATS client (the NATS text protocol by hand); the server's answer."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        sock.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"INFO ")
        connect = {"user": user, "pass": password, "verbose": False, "pedantic": False,
                   "lang": "python", "version": "0", "protocol": 1}  # fmt: skip
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        return reader.readline().strip()


def test_plain_nats_login_with_a_valid_token_is_refused(
    relay_service: RelayService, cluster: NatsCluster
) -> None:
    """Only MQTT clients are admitted: a NATS client would bypass the MQTT topic mapping."""
    node = cluster.nodes[0]
    token = relay_service.user_token("alice", "a-nats")
    answer = _plain_nats_login(node.node.client_port, "alice", token)
    assert answer.startswith(b"-ERR"), answer  # not PONG: refused
    assert "only MQTT clients are admitted" in cluster.logs()
    mqtt = RawClient(node.mqtt_port, "alice", token, client_id=relay_service.cid("a-nats"))
    try:
        assert mqtt.wait_connected(10) == SUCCESS  # the same token, as MQTT: admitted
    finally:
        mqtt.close()


def _raw_connack(port: int, client_id: str, username: str, password: str) -> int:
    """One MQTT 3.1.1 CONNECT over a bare socket; the CONNACK's return code."""

    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack("!H", len(raw)) + raw

    body = text("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)  # user, password, clean
    body += text(client_id) + text(username) + text(password)
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\x10" + encoded + body)
        reply = sock.recv(4)
    assert reply[:2] == b"\x20\x02", reply
    return reply[3]


def test_cluster_logs_never_show_a_token(relay_service: RelayService, cluster: NatsCluster) -> None:
    token = relay_service.user_token("alice", "a-log")
    port = cluster.nodes[0].mqtt_port
    for user in ("alice", "bob"):
        client = RawClient(port, user, token, client_id=relay_service.cid("a-log"))
        client.wait_connected(10)
        client.close()
    logs = cluster.logs()
    assert "username does not match the token" in logs
    assert token not in logs and token.split(".")[2] not in logs
    assert relay_service.jwt_secret not in logs


def test_a_flood_of_bad_logins_is_logged_once_per_reason(
    relay_service: RelayService, cluster: NatsCluster
) -> None:
    """The callout's refusal log is throttled (REFUSAL_LOG_INTERVAL_S), so a stranger's
    login flood under ever new usernames cannot fill the relay's log."""
    token = relay_service.user_token("alice", "a-flood")
    port = cluster.nodes[0].mqtt_port
    for i in range(FLOOD):
        name = f"mallory{i}" + "x" * 200
        assert _raw_connack(port, relay_service.cid("a-flood"), name, token) != 0
    assert cluster.callout is not None
    refusals = [
        line
        for line in cluster.callout.log_text().splitlines()
        if '"nats_login_refused"' in line and "mallory" in line
    ]
    assert 1 <= len(refusals) <= 2, len(refusals)  # one per 5 s window; the flood is quicker
    assert all("x" * 100 not in line for line in refusals)  # the name is cut


def test_nats_config_output_is_a_valid_nats_server_config(
    relay_service: RelayService, tmp_path: Path
) -> None:
    """``coplay-relay nats-config --nodes 3`` writes three configs nats-server accepts."""
    out = tmp_path / "conf"
    done = subprocess.run(
        [*relay_service.command("nats-config"), "--nodes", "3", "--out-dir", str(out)],
        env=relay_service.env(), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    paths = sorted(out.glob("n*.conf"))
    assert [p.name for p in paths] == ["n1.conf", "n2.conf", "n3.conf"]
    for path in paths:
        checked = subprocess.run(
            [nats_server_binary(), "-t", "-c", str(path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        text = path.read_text()
        assert relay_service.jwt_secret not in text
        assert "auth_callout" in text and "mqtt {" in text and "jetstream {" in text
    printed = subprocess.run(
        [*relay_service.command("nats-config"), "--nodes", "3"],
        env=relay_service.env(), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert printed.returncode == 0 and printed.stdout.count("server_name: n") == 3
