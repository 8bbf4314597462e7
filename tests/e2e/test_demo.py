"""The README's first command: the demo runs on its own and leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import Ledger

ROOT = Path(__file__).resolve().parents[2]


def run_demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.demo", "--seconds", "3", *extra],
        cwd=ROOT,
        env=dict(os.environ, TMPDIR=str(tmp_path)),  # its throwaway workdir lands in tmp_path
        capture_output=True,
        text=True,
        timeout=110,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(120)
def test_demo_shows_player_2_prints_latency_and_stops_everything(tmp_path: Path) -> None:
    done = run_demo(tmp_path)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"^P2 friend ", out, re.M), "the P2 pad state is shown"
    assert "seat 2" in out, "the guest's status shows its seat"
    assert re.search(r"p50 ([\d.]+) ms\s+p90 ([\d.]+) ms\s+p99 ([\d.]+) ms", out), out
    assert "exit codes {'guest': 0, 'host': 0, 'relay': 0}" in out
    ports = re.search(
        r"127\.0\.0\.1:(\d+) \(API\), 127\.0\.0\.1:(\d+) \(MQTT\); workdir (\S+)", out
    )
    assert ports, out
    for port in map(int, ports.group(1, 2)):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
    assert not Path(ports.group(3)).exists(), "the throwaway config and secrets are removed"


@pytest.mark.timeout(120)
def test_demo_logs_go_to_the_secret_scan(tmp_path: Path, e2e_ledger: Ledger) -> None:
    """With --keep the logs stay; the suite's last test scans them for the demo's secrets."""
    done = run_demo(tmp_path, "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    workdir = Path(re.findall(r"workdir (\S+)", done.stdout)[0])
    logs = sorted(workdir.glob("*.log"))
    assert {p.name for p in logs} == {"relay.log", "host.log", "guest.log", "invite.log"}
    for name in ("jwt_secret", "app_secret"):
        e2e_ledger.secret(f"demo {name}", (workdir / name).read_text().strip())
    for log in logs:
        e2e_ledger.track(log)
    # the friend joined with the link alone: their kept credential is their own, never the app's
    (kept,) = (workdir / "state" / "guest").rglob("invites/*.json")
    friend = json.loads(kept.read_text())
    assert kept.stat().st_mode & 0o777 == 0o600
    assert friend["app_client_secret"] != (workdir / "app_secret").read_text().strip()
    assert friend["app_client_id"] != "demo-app"
    e2e_ledger.secret("demo friend's credential", friend["app_client_secret"])
    assert not list(workdir.glob("guest.toml")), "the guest needs no config file"
