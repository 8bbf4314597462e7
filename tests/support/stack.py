"""Whole coplay stacks as real processes for the e2e suite: a broker, hosts, guests.

A :class:`Stack` belongs to one test and starts what that test needs:

- ``stack.relay(start=True, **fields)`` -> a ``coplay-relay serve`` process
  (:class:`~tests.support.relay_service.RelayService`): token API + embedded broker;
- ``stack.host(endpoint, **fields)`` -> a started ``coplay-host`` (:class:`StackHost`,
  a :class:`~tests.support.host_process.HostProcess` that can also use the token flow);
- ``stack.guest(endpoint, user, **fields)`` -> a started ``coplay-guest --source virtual``
  (:class:`StackGuest`, a :class:`~tests.support.guest_proc.GuestProcess` whose virtual
  pad the test drives over stdin).

Everything logs at debug level. :func:`press_and_see` presses a button on a guest and
waits for the host's pad to show it.

An *endpoint* is where a client logs in: a :class:`~tests.support.mosquitto.Mosquitto`
(password mode, ``api_url = ""``) or a relay (the token flow: the app client secret
travels in ``COPLAY_APP_CLIENT_SECRET``). :meth:`Stack.close` stops every process
the stack started, guests first, then hosts, then relays.

Every process writes its log under the :class:`Ledger`'s directory (one per test
session), and every secret a stack hands out is written down in the ledger, so
the last e2e test can scan every captured log line for them (:func:`find_leaks`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.frames import Button
from tests.support.guest_proc import GuestProcess
from tests.support.host_process import HostProcess, Line
from tests.support.mosquitto import Mosquitto
from tests.support.relay_service import ROOT, RelayService
from tests.support.tomlfile import write_toml

# Two base64url JSON objects joined by a dot: a JWT's header and claims ('{"' is "eyJ"),
# also when the signature was cut off.
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+")
LOG_SUFFIXES = (".log", ".jsonl")
# Everything runs at debug level, so the secret scan sees every line any level can print.
LOG_LEVEL = "debug"

Endpoint = Mosquitto | RelayService


# ------------------------------------------------------------------ the ledger and the scan


@dataclass(frozen=True)
class Leak:
    """Where a secret showed up (never the secret itself)."""

    path: Path
    line: int
    what: str  # the secret's label, or "a JWT"

    def __str__(self) -> str:
        return f"{self.path.name}:{self.line}: {self.what}"


def find_leaks(path: Path, lines: Iterable[str], secrets_by_label: dict[str, str]) -> list[Leak]:
    """Each line of ``lines`` that holds one of the secrets or anything shaped like a JWT."""
    found = []
    for number, text in enumerate(lines, 1):
        for label, value in secrets_by_label.items():
            if value and value in text:
                found.append(Leak(path, number, label))
        if JWT_PATTERN.search(text):
            found.append(Leak(path, number, "a JWT"))
    return found


class Ledger:
    """The e2e session's log directory and every secret handed to a process in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secrets: dict[str, str] = {}
        self._extra: list[Path] = []

    def area(self, name: str) -> Path:
        """A fresh directory for one test's processes."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
        path = self.root / f"{safe}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        return path

    def secret(self, label: str, value: str) -> None:
        if value:
            self.secrets[f"{label} ({len(self.secrets)})"] = value

    def track(self, path: Path) -> None:
        """A log file that lives outside :attr:`root` (a broker's log)."""
        self._extra.append(path)

    def log_files(self, under: Path | None = None) -> list[Path]:
        """Log files under ``under`` (default: the whole ledger), and the tracked ones."""
        top = self.root if under is None else under
        found = {p for p in top.rglob("*") if p.is_file() and p.suffix in LOG_SUFFIXES}
        found.update(p for p in self._extra if p.is_file())
        return sorted(found)

    def scan(self, under: Path | None = None) -> tuple[int, list[Leak]]:
        """(lines scanned, leaks) over the log files under ``under`` (default: all)."""
        total = 0
        leaks: list[Leak] = []
        for path in self.log_files(under):
            lines = path.read_text(errors="replace").splitlines()
            total += len(lines)
            leaks += find_leaks(path, lines, self.secrets)
        return total, leaks

    def record(self, worker: str) -> dict[str, Any]:
        """What the controller of a parallel run needs to scan this ledger again."""
        return {
            "worker": worker,
            "root": str(self.root),
            "secrets": dict(self.secrets),
            "extra": [str(p) for p in self._extra],
        }


def scan_worker_ledgers(records: list[dict[str, Any]]) -> tuple[int, list[Leak]]:
    """(lines, leaks): every worker's logs scanned for the secrets of every worker."""
    secrets_by_label = {
        f"{r['worker']}: {label}": value for r in records for label, value in r["secrets"].items()
    }
    total = 0
    leaks: list[Leak] = []
    for record in records:
        ledger = Ledger(Path(record["root"]))
        ledger.secrets = secrets_by_label
        for extra in record["extra"]:
            ledger.track(Path(extra))
        lines, found = ledger.scan()
        total += lines
        leaks += found
    return total, leaks


# ------------------------------------------------------------------ processes


@dataclass
class StackHost(HostProcess):
    """A HostProcess that also speaks the token flow (``api_url`` set) to a relay."""

    api_url: str = ""
    broker_url: str = ""
    app_client_id: str = "streamer-app"
    token_lifetime_s: int = 86400

    def relay_table(self) -> dict[str, Any]:
        if not self.api_url:
            return super().relay_table()
        return {
            "api_url": self.api_url,
            "broker_url": self.broker_url,
            "app_id": "coplay",
            "app_client_id": self.app_client_id,
            "username": self.username,
            "device_id": self.device_id,
            "session": self.session,
            "topic_prefix": self.prefix,
            "keepalive_s": 5,
            "token_lifetime_s": self.token_lifetime_s,
        }

    def lines(self, reason: str | None = None) -> list[Line]:
        """The pad states written so far (only those with ``reason``, if given)."""
        return [x for x in self.jsonl.lines() if reason is None or x["reason"] == reason]

    def wait_lines(
        self, reason: str, after: int = 0, count: int = 1, timeout: float = 15.0, **match: Any
    ) -> list[Line]:
        """Wait for ``count`` pad lines with ``reason`` (and ``match``) past the first ``after``."""

        def hits(lines: list[Line]) -> list[Line]:
            return [
                x
                for x in lines[after:]
                if x["reason"] == reason and all(x.get(k) == v for k, v in match.items())
            ]

        lines = self.jsonl.wait_for(lambda ls: len(hits(ls)) >= count, timeout, self.alive)
        return hits(lines)

    def count_log(self, event: str) -> int:
        return len(self.log_lines(event))

    def wait_log_count(self, event: str, count: int, timeout: float = 20.0) -> list[Line]:
        """Wait until ``event`` was logged ``count`` times; those lines."""
        self.logs.wait_for(
            lambda ls: sum(x.get("event") == event for x in ls) >= count, timeout, self.alive
        )
        return self.log_lines(event)

    def wait_drops(self, reason: str, more_than: int, timeout: float = 20.0) -> int:
        """Wait for a ``host_status`` line counting over ``more_than`` drops for ``reason``.

        Needs ``status_interval_s`` > 0. Returns the count seen.
        """

        def seen(lines: list[Line]) -> int:
            counts = [
                int(x.get("drops", {}).get(reason, 0))
                for x in lines
                if x.get("event") == "host_status"
            ]
            return max(counts, default=0)

        lines = self.logs.wait_for(lambda ls: seen(ls) > more_than, timeout, self.alive)
        return seen(lines)

    def wait_drops_total(self, at_least: int, timeout: float = 30.0) -> int:
        """Wait for a ``host_status`` line counting ``at_least`` drops in all (for pacing)."""

        def total(lines: list[Line]) -> int:
            for line in reversed(lines):
                if line.get("event") == "host_status":
                    return sum(int(n) for n in line.get("drops", {}).values())
            return 0

        return total(self.logs.wait_for(lambda ls: total(ls) >= at_least, timeout, self.alive))

    def drops_now(self, reason: str) -> int:
        counts = [int(x.get("drops", {}).get(reason, 0)) for x in self.log_lines("host_status")]
        return max(counts, default=0)


class StackGuest(GuestProcess):
    """A guest process, plus the helpers the e2e tests use on its log."""

    def status(self, **match: Any) -> dict[str, Any]:
        """Wait for a ``guest_status`` line whose fields include ``match``."""
        return self.wait_log(
            lambda e: (
                e.get("event") == "guest_status" and all(e.get(k) == v for k, v in match.items())
            )
        )

    def wait_seated(self, timeout: float = 20.0) -> int:
        event = self.wait_log(
            lambda e: e.get("event") == "seat_taken" and bool(e.get("seat")), timeout
        )
        return int(event["seat"])

    def count(self, event: str) -> int:
        return sum(e.get("event") == event for e in self.events())

    def wait_count(self, event: str, count: int, timeout: float = 20.0) -> None:
        """Wait until ``event`` was logged ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.count(event) < count:
            if not self.alive():
                raise AssertionError(f"guest exited {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{event} not logged {count} times in {timeout}s")
            time.sleep(0.05)  # polling a log file: there is no event to await

    def epoch(self) -> int:
        event = self.wait_log(lambda e: e.get("event") == "guest_starting")
        return int(event["epoch"])

    def alive(self) -> bool:
        return self.proc.poll() is None


def guest_config(
    path: Path,
    endpoint: Endpoint,
    *,
    user: str,
    prefix: str,
    session: str = "s1",
    rate_hz: int = 60,
    token_lifetime_s: int = 86400,
    app_client_id: str | None = None,
    relay_extra: dict[str, Any] | None = None,
) -> Path:
    """A guest.toml for ``endpoint`` (secrets are not in it: they go in the environment).

    ``relay_extra`` adds to (or replaces keys of) the ``[relay]`` table.
    """
    relay: dict[str, Any]
    if isinstance(endpoint, RelayService):
        relay = {
            "api_url": endpoint.api_url,
            "broker_url": endpoint.broker_url,
            "app_id": endpoint.app_id,
            "app_client_id": app_client_id or endpoint.client_id,
            "token_lifetime_s": token_lifetime_s,
        }
    else:
        relay = {"api_url": "", "broker_url": endpoint.url}
    relay.update(
        username=user,
        session=session,
        topic_prefix=prefix,
        device_id=f"g{uuid.uuid4().hex[:10]}",
        keepalive_s=5,
    )
    relay.update(relay_extra or {})
    guest = {"source": "virtual", "rate_hz": rate_hz, "max_rate_hz": 500}
    return write_toml(path, {"relay": relay, "guest": guest})


class Stack:
    """The processes of one e2e test; :meth:`close` stops them all."""

    def __init__(self, ledger: Ledger, name: str, prefix: str) -> None:
        self.ledger = ledger
        self.dir = ledger.area(name)
        self.prefix = prefix
        self.relays: list[RelayService] = []
        self.hosts: list[StackHost] = []
        self.guests: list[StackGuest] = []

    @property
    def started_any(self) -> bool:
        return bool(self.relays or self.hosts or self.guests)

    # ------------------------------------------------------------ endpoints

    def relay(self, start: bool = True, **fields: Any) -> RelayService:
        """A relay service whose log lands in this stack's directory."""
        fields.setdefault("log_level", LOG_LEVEL)
        service = RelayService(self.dir / f"relay{len(self.relays)}", **fields)
        self.relays.append(service)
        self.ledger.secret("relay app client secret", service.client_secret)
        self.ledger.secret("relay JWT secret", service.jwt_secret)
        if start:
            service.start()
        return service

    def broker(self, broker: Mosquitto) -> Mosquitto:
        """Note a Mosquitto's passwords and log for the secret scan."""
        for user, password in broker.passwords.items():
            self.ledger.secret(f"Mosquitto password of {user}", password)
        self.ledger.track(broker.workdir / "mosquitto.log")
        return broker

    def prefix_for(self, endpoint: Endpoint) -> str:
        return endpoint.topic_prefix if isinstance(endpoint, RelayService) else self.prefix

    # ------------------------------------------------------------ clients

    def host(
        self,
        endpoint: Endpoint,
        *,
        app_secret: str | None = None,
        start: bool = True,
        **fields: Any,
    ) -> StackHost:
        """A ``coplay-host`` with a jsonl sink, logged in to ``endpoint`` as ``streamer``."""
        extra_env = dict(fields.pop("extra_env", {}))
        if isinstance(endpoint, RelayService):
            secret = endpoint.client_secret if app_secret is None else app_secret
            self.ledger.secret("app client secret given to a host", secret)
            extra_env["COPLAY_APP_CLIENT_SECRET"] = secret
            fields.setdefault("api_url", endpoint.api_url)
            fields.setdefault("broker_url", endpoint.broker_url)
            fields.setdefault("app_client_id", endpoint.client_id)
            port, password = endpoint.mqtt_port, ""
        else:
            self.broker(endpoint)
            port, password = endpoint.port, endpoint.passwords["streamer"]
        fields.setdefault("log_level", LOG_LEVEL)
        host = StackHost(
            self.dir / f"host{len(self.hosts)}",
            broker_port=port,
            password=password,
            prefix=self.prefix_for(endpoint),
            extra_env=extra_env,
            **fields,
        )
        self.hosts.append(host)
        if start:
            host.start()
        return host

    def guest(
        self,
        endpoint: Endpoint,
        user: str = "alice",
        *,
        app_secret: str | None = None,
        **fields: Any,
    ) -> StackGuest:
        """A started ``coplay-guest --source virtual`` whose pad this test drives over stdin."""
        workdir = self.dir / f"guest{len(self.guests)}-{user}"
        workdir.mkdir()
        config = guest_config(
            workdir / "guest.toml", endpoint, user=user, prefix=self.prefix_for(endpoint), **fields
        )
        env: dict[str, str] = {}
        if isinstance(endpoint, RelayService):
            secret = endpoint.client_secret if app_secret is None else app_secret
            self.ledger.secret("app client secret given to a guest", secret)
            env["COPLAY_APP_CLIENT_SECRET"] = secret
            password = ""
        else:
            self.broker(endpoint)
            password = endpoint.passwords[user]
        guest = StackGuest(config, password, workdir, args=("--log-level", LOG_LEVEL), env=env)
        self.guests.append(guest)
        return guest

    # ------------------------------------------------------------ invites

    def host_cli(self, host: StackHost, *args: str) -> subprocess.CompletedProcess[str]:
        """``coplay-host ARGS --config host.toml`` with the host's config and environment.

        Its stderr lands in the host's directory, so the secret scan reads it too.
        """
        host.write_config()
        env = dict(os.environ)
        env.update(XDG_STATE_HOME=str(host.workdir / "state"), PYTHONPATH=str(ROOT))
        env.update(host.extra_env)
        with open(host.workdir / f"host-cli-{uuid.uuid4().hex[:6]}.log", "w+") as err:
            done = subprocess.run(
                [sys.executable, "-m", "host.cli", *args, "--config", str(host.config_path)],
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=60,
                check=False,
            )
            err.seek(0)
            done.stderr = err.read()
        return done

    def invite(self, host: StackHost, user: str, *args: str) -> str:
        """``coplay-host invite USER``: the join link, which must be its only line on stdout."""
        done = self.host_cli(host, "invite", user, *args)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 1, f"stdout must be the link alone, got {len(lines)} lines"
        link = lines[0]
        self.ledger.secret(f"join link for {user}", link)
        self.ledger.secret(f"invite code for {user}", link.partition("#")[2])
        return link

    def join(self, link: str, user: str = "alice", workdir: Path | None = None) -> StackGuest:
        """``coplay-guest join LINK --source virtual``: no config file, and an environment and
        state directory holding nothing of the streamer's (only what any process needs)."""
        if workdir is None:
            workdir = self.dir / f"join{len(self.guests)}-{user}"
            workdir.mkdir()
        guest = StackGuest(
            workdir / "no-config",
            "",
            workdir,
            args=("--log-level", LOG_LEVEL),
            command=("join", link, "--source", "virtual"),
            clean_env=True,
        )
        self.guests.append(guest)
        return guest

    def kept_invites(self, guest: StackGuest) -> list[dict[str, Any]]:
        """The redeems a joined guest keeps in its state directory (noting their secrets)."""
        found = []
        for path in sorted(guest.state_dir.rglob("invites/*.json")):
            kept = json.loads(path.read_text())
            self.ledger.secret("a friend's app credential", kept["app_client_secret"])
            found.append(kept)
        return found

    # ------------------------------------------------------------ teardown

    def close(self) -> None:
        """Stop everything this stack started: guests, hosts, then relays."""
        for guest in self.guests:
            guest.close()
            self.kept_invites(guest)  # the secret scan looks for friends' credentials too
        for host in self.hosts:
            if host.alive():
                host.stop(signal.SIGTERM, timeout=10)
        for relay in self.relays:
            try:
                relay.stop()
            except subprocess.TimeoutExpired:
                pass
            finally:
                relay.kill()


def wrong_secret() -> str:
    """An app client secret no relay knows."""
    return secrets.token_urlsafe(24)


def press_and_see(
    guest: StackGuest, host: StackHost, button: str = "A", timeout: float = 20.0
) -> list[Line]:
    """Press and release ``button`` on the guest's virtual pad; the host's pad shows both.

    Returns the host's line that showed the press.
    """
    bit = 1 << int(Button[button])
    before = len(host.lines())
    guest.send(press=button)
    pressed = host.wait_lines("input", after=before, timeout=timeout, buttons=bit)
    guest.send(release=button)
    after = before + host.lines()[before:].index(pressed[0]) + 1
    host.wait_lines("input", after=after, timeout=timeout, buttons=0)
    return pressed[:1]
