"""A real ``coplay-guest`` process for tests: a virtual pad driven over stdin, logs as JSON.

The guest runs ``--source virtual`` with ``COPLAY_VIRTUAL_SCRIPT=-``, so each
JSON line written with :meth:`GuestProcess.send` drives its own SDL virtual pad
(SDL virtual devices exist per process). Its stderr (JSON log lines, among
them ``guest_status`` and ``virtual_rumble``) goes to a file that
:meth:`GuestProcess.wait_log` reads. The broker password reaches it through
``COPLAY_MQTT_PASSWORD``, never argv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from relay.frames import Drop, Frame, FrameCodec
from relay.procs import kill_process
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Received
from tests.support.tomlfile import write_toml

ROOT = Path(__file__).resolve().parents[2]
HEADLESS = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def write_guest_config(
    path: Path,
    broker: Mosquitto,
    prefix: str,
    *,
    user: str = "alice",
    session: str = "s1",
    rate_hz: int = 60,
    max_rate_hz: int = 500,
    device_id: str | None = None,
    extra: str = "",
) -> Path:
    """A guest.toml for ``broker``; ``device_id=""`` leaves it to the default (the state dir)."""
    if device_id is None:
        device_id = f"g{uuid.uuid4().hex[:10]}"
    relay = {
        "api_url": "",
        "broker_url": broker.url,
        "username": user,
        "session": session,
        "topic_prefix": prefix,
        "device_id": device_id or None,
        "keepalive_s": 5,
    }
    guest = {"source": "virtual", "rate_hz": rate_hz, "max_rate_hz": max_rate_hz}
    return write_toml(path, {"relay": relay, "guest": guest}, extra=extra)


class GuestProcess:
    """One guest process; ``close`` stops it (SIGKILL if it will not stop)."""

    def __init__(
        self,
        config: Path,
        password: str,
        workdir: Path,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        command: tuple[str, ...] | None = None,  # instead of ("--config", config)
        clean_env: bool = False,  # True: only what a guest needs, nothing of this process's
    ) -> None:
        self.log_path = workdir / f"guest-{uuid.uuid4().hex[:6]}.log"
        self.password = password
        self.state_dir = workdir / "state"
        base = (
            {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir / "home")}
            if clean_env
            else {**os.environ}
        )
        full_env = {
            **base,
            **HEADLESS,
            **({"COPLAY_MQTT_PASSWORD": password} if password else {}),
            "COPLAY_VIRTUAL_SCRIPT": "-",
            "XDG_STATE_HOME": str(self.state_dir),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        if not password:  # a guest with no broker password (a join link, a LAN broker)
            full_env.pop("COPLAY_MQTT_PASSWORD", None)
        self.env = full_env
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "guest.cli",
                    *(command if command is not None else ("--config", str(config))),
                    "--log-format",
                    "json",
                    *args,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=full_env,
                cwd=ROOT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, **command: Any) -> None:
        """One script command for the guest's virtual pad (see guest.script)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> int:
        """How many log events there are now (for ``wait_log(since=...)``)."""
        return len(self.events())

    def wait_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0, since: int = 0
    ) -> dict[str, Any]:
        """The first log event (from index ``since``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events()[since:]:
                if predicate(event):
                    return event
            if self.proc.poll() is not None:
                raise AssertionError(f"guest exited {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no such log event in {timeout}s:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def close(self) -> None:
        kill_process(self.proc, 10.0)
        if self.proc.stdin is not None:
            with suppress(BrokenPipeError):
                self.proc.stdin.close()


@contextmanager
def guest_process(
    config: Path, password: str, workdir: Path, **kwargs: Any
) -> Iterator[GuestProcess]:
    guest = GuestProcess(config, password, workdir, **kwargs)
    try:
        yield guest
    finally:
        guest.close()


def decoded(messages: list[Received]) -> list[Frame]:
    """Every message's frame (a payload that does not decode fails the test)."""
    codec = FrameCodec()
    frames = []
    for message in messages:
        frame = codec.decode(message.payload)
        assert not isinstance(frame, Drop), (frame, message.payload)
        frames.append(frame)
    return frames
