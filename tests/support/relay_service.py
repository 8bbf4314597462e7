"""A real ``coplay-relay serve`` process on free loopback ports, for tests of every tier.

Fixtures (registered in ``tests/conftest.py``):

``relay_service``
    A started relay for this test. App ``client_id = "streamer-app"``,
    ``app_id = "coplay"``, a random ``client_secret``, a random 48-character
    JWT secret (passed as ``COPLAY_JWT_SECRET``, never argv), ``hosts =
    ["streamer"]``, topic prefix ``coplay`` unless given, and free ports for
    the API, MQTT and WebSocket listeners.

``relay_service_factory``
    ``make(start=True, **fields)`` -> :class:`RelayService`; fields override
    the defaults (``api_port=`` to pick a port, ``rate_limit_per_min=``,
    ``max_token_s=``, ``topic_prefix=``, ``ws=False``...). With
    ``start=False`` nothing runs until ``.start()``: tests of "token API down
    at start" point a client at ``service.api_url`` first, then start it.

Useful members: ``api_url``, ``broker_url``, ``ws_url``, ``mqtt_port``,
``ws_port``, ``client_id``, ``client_secret``, ``jwt_secret``, ``app_id``,
``start()``, ``stop()`` (SIGTERM, returns the exit code), ``kill()``
(SIGKILL), ``app_token()``, ``user_token(username, device_id)`` (over HTTP),
``cid(device_id)``, ``mint(claims)`` (sign any claims with the JWT secret,
e.g. an expired token), ``log_text()`` (the process's stderr).
"""

from __future__ import annotations

import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.procs import free_port, kill_process
from tests.support.tomlfile import dumps

ROOT = Path(__file__).resolve().parents[2]
READY_EVENT = "relay_ready"


@dataclass
class RelayService:
    """One relay process; ``start``/``stop`` may be called again (same ports, same secrets)."""

    workdir: Path
    api_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    ws_port: int = field(default_factory=free_port)
    ws: bool = True
    app_id: str = "coplay"
    client_id: str = "streamer-app"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(36))  # 48 chars
    hosts: tuple[str, ...] = ("streamer",)
    topic_prefix: str = "coplay"
    max_token_s: int = 86400
    rate_limit_per_min: int = 6000
    # "app": the app's own credentials also mint guest tokens (the hosted-provider flow most
    # tests use); None: the relay's default, "invite" (guests need a join link)
    guest_tokens: str | None = "app"
    guest_token_s: int | None = None
    public_url: str = ""
    extra_apps: str = ""  # more [[apps]] blocks, verbatim
    log_level: str = "info"
    tls_cert: str = ""  # PEM paths; both set = TLS on the API and both broker listeners
    tls_key: str = ""
    server_extra: str = ""  # more [server] lines, e.g. "max_subscriptions = 4\n"
    proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------ addresses

    @property
    def api_url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://127.0.0.1:{self.api_port}"

    @property
    def broker_url(self) -> str:
        return f"{'mqtts' if self.tls_cert else 'mqtt'}://127.0.0.1:{self.mqtt_port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls_cert else 'ws'}://127.0.0.1:{self.ws_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "relay.toml"

    @property
    def state_db(self) -> Path:
        """The invite store (kept across restarts of this service)."""
        return self.workdir / "relay.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.workdir / "relay.log"

    def cid(self, device_id: str = "dev1") -> str:
        """The MQTT client id a client with ``device_id`` must use."""
        return f"{device_id}@{self.app_id}"

    # ------------------------------------------------------------ process

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        server = {
            "api_listen": f"127.0.0.1:{self.api_port}",
            "mqtt_listen": f"127.0.0.1:{self.mqtt_port}",
            "ws_listen": f"127.0.0.1:{self.ws_port}" if self.ws else "",
            "max_token_s": self.max_token_s,
            "topic_prefix": self.topic_prefix,
            "rate_limit_per_min": self.rate_limit_per_min,
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "state_db": str(self.state_db),
            "guest_token_s": self.guest_token_s or None,
            "public_url": self.public_url or None,
        }
        app = {
            "app_id": self.app_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "hosts": list(self.hosts),
            "guest_tokens": self.guest_tokens or None,
        }
        # the verbatim extras: more [server] lines, then more [[apps]] blocks
        text = dumps({"server": server}) + self.server_extra + "\n" + dumps({"apps": [app]})
        self.config_path.write_text(text + self.extra_apps)
        self.config_path.chmod(0o600)
        return self.config_path

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "relay.cli", *extra, "--config", str(self.config_path)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["COPLAY_JWT_SECRET"] = self.jwt_secret
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("COPLAY_CONFIG_DIR", None)
        return env

    def start(self, timeout: float = 30.0) -> None:
        """Start ``coplay-relay serve`` and wait for its ``relay_ready`` log line."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.write_config()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.command("serve"), "--log-format", "json", "--log-level", self.log_level],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=ROOT,
                env=self.env(),
            )
        deadline = time.monotonic() + timeout
        while READY_EVENT not in self.log_text()[offset:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}: {self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"relay not ready after {timeout}s: {self.log_text()}")
            time.sleep(0.02)  # polling a log file: there is no event to await across processes

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it was not running)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: the abrupt death of the relay."""
        if self.proc is not None:
            kill_process(self.proc, 30.0)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------ tokens

    def post(self, path: str, json: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        verify: ssl.SSLContext | bool = True
        if self.tls_cert:  # a self-signed test certificate is its own CA
            verify = ssl.create_default_context(cafile=self.tls_cert)
        return httpx.post(
            self.api_url + path, json=json, headers=headers, timeout=10, verify=verify
        )

    def app_token(self) -> str:
        reply = self.post(
            "/openapi/rm/app/token",
            {"appClientId": self.client_id, "appClientSecret": self.client_secret},
        )
        reply.raise_for_status()
        return str(reply.json()["body"]["access_token"])

    def user_token(self, username: str, device_id: str = "dev1", expires_in: int = 3600) -> str:
        """A user token for ``username`` with client id ``cid(device_id)``, fetched over HTTP."""
        reply = self.post(
            "/openapi/rm/user/token",
            {"username": username, "expires_in": expires_in, "cid": self.cid(device_id)},
            headers={"Authorization": self.app_token()},
        )
        reply.raise_for_status()
        return str(reply.json()["body"]["access_token"])

    # ------------------------------------------------------------ invites

    def host_token(self, device_id: str = "host1", username: str | None = None) -> str:
        return self.user_token(username or self.hosts[0], device_id)

    def invite(self, username: str, session: str = "s1", **fields: Any) -> dict[str, Any]:
        """Create an invite with a host token: the body (``invite``, ``url``, ``expires_in``)."""
        reply = self.post(
            "/openapi/rm/invite",
            {"session": session, "username": username, **fields},
            headers={"Authorization": self.host_token()},
        )
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()["body"]
        return body

    def redeem(self, code: str) -> httpx.Response:
        return self.post("/openapi/rm/invite/redeem", {"invite": code})

    def revoke(self, username: str, session: str = "s1") -> httpx.Response:
        return self.post(
            "/openapi/rm/invite/revoke",
            {"session": session, "username": username},
            headers={"Authorization": self.host_token()},
        )

    def friend_app_token(self, redeemed: dict[str, Any]) -> httpx.Response:
        return self.post(
            "/openapi/rm/app/token",
            {
                "appClientId": redeemed["appClientId"],
                "appClientSecret": redeemed["appClientSecret"],
            },
        )

    def friend_token(self, redeemed: dict[str, Any], device_id: str = "f1") -> str:
        """A user token for the redeemed credential's own username, over HTTP."""
        app = self.friend_app_token(redeemed)
        assert app.status_code == 200, app.text
        reply = self.post(
            "/openapi/rm/user/token",
            {
                "username": redeemed["username"],
                "cid": f"{device_id}@{redeemed['app_id']}",
                "expires_in": 600,
            },
            headers={"Authorization": app.json()["body"]["access_token"]},
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["body"]["access_token"])

    def mint(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` with this relay's JWT secret (for expired or forged-claim tokens)."""
        import jwt

        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")


@pytest.fixture
def relay_service_factory(tmp_path: Path) -> Iterator[Callable[..., RelayService]]:
    """``make(start=True, **fields)`` -> a RelayService; every one is stopped at teardown."""
    made: list[RelayService] = []

    def make(start: bool = True, **fields: Any) -> RelayService:
        service = RelayService(tmp_path / f"relay{len(made)}", **fields)
        made.append(service)
        if start:
            service.start()
        return service

    yield make
    for service in made:
        try:
            service.stop()
        finally:
            service.kill()


@pytest.fixture
def relay_service(relay_service_factory: Callable[..., RelayService]) -> RelayService:
    """A started relay (token API + embedded broker) of this test's own."""
    return relay_service_factory()


@contextmanager
def running_relay(workdir: Path, **fields: Any) -> Iterator[RelayService]:
    """A started relay for a module's tests; stopped (then killed, if need be) at the end."""
    service = RelayService(workdir, **fields)
    service.start()
    try:
        yield service
    finally:
        try:
            service.stop()
        finally:
            service.kill()
