"""The real ``coplay-host`` as a process for tests: a generated config, a jsonl sink, its logs.

::

    with HostProcess(tmp_path, broker_port=..., password=..., prefix=prefix) as host:
        host.wait_ready()
        ...
        host.jsonl.wait_for(lambda lines: any(l["reason"] == "stale" for l in lines))
        assert host.stop() == 0

The password travels in ``COPLAY_MQTT_PASSWORD``, never on the command line.
Logs are JSON lines on the process's stderr, kept in ``host.log``;
:meth:`HostProcess.wait_log` awaits an event there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.procs import kill_process, stop_process
from tests.support.tomlfile import write_toml

Line = dict[str, Any]
_POLL_S = 0.01  # tailing a file: there is no event to await


class JsonlTail:
    """Reads a growing JSON-lines file; ``wait_for`` polls until a predicate holds."""

    def __init__(self, path: Path, strict: bool = True) -> None:
        self.path = path
        self._strict = strict  # False: a line that is not JSON becomes {"raw": text}
        self._offset = 0
        self._partial = b""
        self._lines: list[Line] = []

    def lines(self) -> list[Line]:
        """Every complete line so far, parsed."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return list(self._lines)
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        self._lines.extend(self._parse(raw) for raw in complete if raw.strip())
        return list(self._lines)

    def _parse(self, raw: bytes) -> Line:
        try:
            parsed = json.loads(raw)
        except ValueError:
            if self._strict:
                raise
            return {"raw": raw.decode(errors="replace")}
        return parsed if isinstance(parsed, dict) else {"raw": parsed}

    def wait_for(
        self,
        predicate: Callable[[list[Line]], bool],
        timeout: float = 15.0,
        alive: Callable[[], bool] | None = None,
    ) -> list[Line]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                tail = lines[-5:]
                raise TimeoutError(
                    f"{self.path.name}: condition not met in {timeout}s; last {tail}"
                )
            if alive is not None and not alive():
                raise RuntimeError(f"{self.path.name}: the process ended; last lines {lines[-5:]}")
            time.sleep(_POLL_S)


@dataclass
class HostProcess:
    """One ``python -m host.cli`` process with a config of its own."""

    workdir: Path
    broker_port: int
    password: str
    prefix: str
    session: str = "s1"
    username: str = "streamer"
    seats: Sequence[int] = (2,)
    allow: Sequence[str] = ()
    stale_ms: int = 250
    idle_s: int = 60
    status_interval_s: float = 0.0
    sink: str | None = None  # default: jsonl into workdir
    log_level: str = "info"
    extra_env: dict[str, str] = field(default_factory=dict)
    device_id: str | None = None  # None: a fresh one per process; "": the default (state dir)
    host_extra: str = ""  # more [host] lines, e.g. "sink_fail_s = 2\n"
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.workdir / "pads.jsonl"
        self.config_path = self.workdir / "host.toml"
        self.log_path = self.workdir / "host.log"
        self.jsonl = JsonlTail(self.jsonl_path)
        self.logs = JsonlTail(self.log_path, strict=False)
        if self.device_id is None:
            self.device_id = f"host-{uuid.uuid4().hex[:12]}"

    @property
    def sink_spec(self) -> str:
        return self.sink or f"jsonl:{self.jsonl_path}"

    def relay_table(self) -> dict[str, Any]:
        """The config's ``[relay]`` table: password login to a broker on loopback."""
        return {
            "api_url": "",
            "broker_url": f"mqtt://127.0.0.1:{self.broker_port}",
            "username": self.username,
            "device_id": self.device_id or None,  # None: the default (from the state dir)
            "session": self.session,
            "topic_prefix": self.prefix,
            "keepalive_s": 5,
        }

    def host_table(self) -> dict[str, Any]:
        return {
            "seats": list(self.seats),
            "allow": list(self.allow),
            "stale_ms": self.stale_ms,
            "idle_s": self.idle_s,
            "status_interval_s": self.status_interval_s,
            "sink": "null",  # the command line's --sink wins
        }

    def write_config(self) -> Path:
        data = {"relay": self.relay_table(), "host": self.host_table()}
        return write_toml(self.config_path, data, extra=self.host_extra)

    def start(self) -> HostProcess:
        self.write_config()
        env = dict(os.environ)
        if self.password:
            env["COPLAY_MQTT_PASSWORD"] = self.password
        env.update(
            XDG_STATE_HOME=str(self.workdir / "state"),
            PYTHONUNBUFFERED="1",
        )
        env.pop("NOTIFY_SOCKET", None)
        env.update(self.extra_env)
        argv = [
            sys.executable, "-m", "host.cli", "--config", str(self.config_path),
            "--sink", self.sink_spec, "--log-level", self.log_level, "--log-format", "json",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=Path(__file__).resolve().parents[2],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_log(
        self, event: str, predicate: Callable[[Line], bool] | None = None, timeout: float = 20.0
    ) -> Line:
        """The first log line with this ``event`` (and ``predicate``), waiting for it."""

        def match(line: Line) -> bool:
            return line.get("event") == event and (predicate is None or predicate(line))

        lines = self.logs.wait_for(lambda ls: any(match(x) for x in ls), timeout, self.alive)
        return next(x for x in lines if match(x))

    def log_lines(self, event: str) -> list[Line]:
        return [x for x in self.logs.lines() if x.get("event") == event]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until connected and subscribed (the ``host_ready`` log event)."""
        self.wait_log("host_ready", timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the host and wait for its exit code (killed after ``timeout``)."""
        return 0 if self.proc is None else stop_process(self.proc, sig, timeout)

    def stderr_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> HostProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            kill_process(self.proc)
