"""The README's first command: the demo runs on its own and leaves nothing behind."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_demo_shows_player_2_prints_latency_and_stops_everything() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "relay.demo", "--seconds", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"^P2 friend ", out, re.M), "the P2 pad state is shown"
    assert "seat 2" in out, "the guest's status shows its seat"
    summary = re.search(r"p50 ([\d.]+) ms\s+p90 ([\d.]+) ms\s+p99 ([\d.]+) ms", out)
    assert summary, out
    assert "exit codes {'guest': 0, 'host': 0, 'relay': 0}" in out
    ports = re.search(
        r"127\.0\.0\.1:(\d+) \(API\), 127\.0\.0\.1:(\d+) \(MQTT\); workdir (\S+)", out
    )
    assert ports, out
    for port in map(int, ports.group(1, 2)):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
    assert not Path(ports.group(3)).exists(), "the throwaway config and secrets are removed"
