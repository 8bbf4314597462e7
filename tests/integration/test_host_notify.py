"""The real host under a stand-in for systemd's notify socket: READY=1 after subscribing,
STATUS= with seats and link state, WATCHDOG=1 while healthy, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.support.host_process import HostProcess
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.slow


def test_ready_status_watchdog_and_stopping(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(20)
        host = HostProcess(
            tmp_path / "host",
            mosquitto.port,
            mosquitto.passwords["streamer"],
            prefix,
            extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"},
        )
        with host:
            got: list[str] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                "READY=1" in got and got.count("WATCHDOG=1") >= 3
            ):
                got.append(server.recv(4096).decode())
            assert "READY=1" in got
            assert got.count("WATCHDOG=1") >= 3
            assert any(m.startswith("STATUS=P2 ") and "link connected" in m for m in got)
            assert host.stop() == 0
            rest = []
            server.settimeout(0.5)
            try:
                while True:
                    rest.append(server.recv(4096).decode())
            except TimeoutError:
                pass
            assert "STOPPING=1" in rest
