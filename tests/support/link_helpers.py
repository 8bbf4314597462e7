"""Helpers for Link tests: settings for a Mosquitto user, a recording handler, test credentials."""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.config import LinkSettings
from relay.errors import CoplayError
from relay.linkstatus import LinkState, LinkStatus
from relay.procs import free_port
from relay.secrets import Secret
from relay.tokens import Credentials
from tests.support.mosquitto import Mosquitto


def link_settings(
    broker_url: str, username: str, password: str = "", **overrides: Any
) -> LinkSettings:
    """LinkSettings for a plain broker (``api_url = ""``), as a config file would give."""
    values: dict[str, Any] = {
        "api_url": "",
        "broker_url": broker_url,
        "app_id": "coplay",
        "app_client_id": "streamer-app",
        "app_client_secret": None,
        "username": username,
        "password": Secret(password) if password else None,
        "device_id": f"dev-{username}-{threading.get_ident() % 100000}",
        "session": "friday",
        "topic_prefix": "coplay",
        "ca_file": "",
        "tls_verify": True,
        "mqtt_version": "3.1.1",
        "keepalive_s": 10,
        "token_lifetime_s": 3600,
    }
    values.update(overrides)
    return LinkSettings(**values)


@dataclass(frozen=True)
class Got:
    topic: str
    payload: bytes
    retained: bool


class Recorder:
    """A MessageHandler that keeps what arrived, with waiting on a condition."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.messages: list[Got] = []

    def __call__(self, topic: str, payload: bytes, retained: bool) -> None:
        with self._cond:
            self.messages.append(Got(topic, payload, retained))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Got]], bool], timeout: float = 10.0) -> list[Got]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.messages), timeout):
                raise TimeoutError(f"condition not met in {timeout}s; got {self.messages!r}")
            return list(self.messages)

    def wait_payload(self, payload: bytes, timeout: float = 10.0) -> list[Got]:
        return self.wait_for(lambda got: any(m.payload == payload for m in got), timeout)


class StatusLog:
    """An on_status callback that keeps every status it was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[LinkStatus] = []

    def __call__(self, status: LinkStatus) -> None:
        with self._lock:
            self.seen.append(status)

    def states(self) -> list[LinkState]:
        with self._lock:
            return [s.state for s in self.seen]


@dataclass
class ScriptedCredentials:
    """A CredentialSource whose passwords come from a list: one per get/refresh, the last repeats.

    An entry may be a CoplayError instance, which is raised instead.
    """

    username: str
    client_id: str
    passwords: list[str | CoplayError]
    gets: int = 0
    refreshes: int = 0
    closed: bool = False
    _index: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self) -> Credentials:
        entry = self.passwords[min(self._index, len(self.passwords) - 1)]
        if isinstance(entry, CoplayError):
            self._index += 1
            raise entry
        return Credentials(self.client_id, self.username, Secret(entry))

    def get(self) -> Credentials:
        with self._lock:
            self.gets += 1
            return self._next()

    def refresh(self) -> Credentials:
        with self._lock:
            self.refreshes += 1
            self._index += 1
            return self._next()

    def close(self) -> None:
        self.closed = True


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=coplay test CA"])  # fmt: skip
    run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext])  # fmt: skip
    key.chmod(0o600)
    return ca, cert, key


def add_tls_listener(broker: Mosquitto, tls_dir: Path) -> tuple[int, Path]:
    """Give a prepared (not yet started) Mosquitto a TLS listener too: (port, CA file)."""
    ca, cert, key = make_tls_files(tls_dir)
    port = free_port()
    conf = broker.workdir / "mosquitto.conf"
    conf.write_text(
        conf.read_text()
        + f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
    )
    return port, ca
