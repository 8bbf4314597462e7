"""The files in systemd/: units that ``systemd-analyze verify`` accepts, a host unit whose
offline exposure score is <= 2.5, a udev rule and modules-load file as DESIGN asks, and
example configs that load."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from relay.config import load_host_config
from relay.service.config import load_relay_config

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def stand_in(unit: Path, tmp_path: Path) -> Path:
    """A copy of ``unit`` whose ExecStart is /bin/true (the real binary is not installed here)."""
    text = re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", unit.read_text())
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


def exposure(unit: Path) -> float:
    assert ANALYZE is not None
    out = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
    assert match, out.stdout + out.stderr
    return float(match[1])


def test_there_are_units() -> None:
    assert {u.name for u in UNITS} == {"coplay-host.service", "coplay-relay.service"}


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verify_accepts(unit: Path, tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", str(stand_in(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert unit.name not in result.stderr, result.stderr  # no warning about this unit


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_offline_exposure_score(unit: Path, tmp_path: Path) -> None:
    score = exposure(stand_in(unit, tmp_path))
    print(f"\n{unit.name}: systemd-analyze security --offline=true exposure {score}")
    assert score <= 2.5


def test_host_unit_contract() -> None:
    text = (SYSTEMD / "coplay-host.service").read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "RestartPreventExitStatus=77 78",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/uinput rw",
        "SupplementaryGroups=coplay",
    ):
        assert re.search(rf"(?m)^{re.escape(line)}$", text), line
    assert re.search(r"(?m)^WatchdogSec=\d+s?$", text)
    assert re.search(r"(?m)^LoadCredential=", text)


def test_udev_rule_gives_uinput_to_the_coplay_group() -> None:
    rules = [
        line
        for line in (SYSTEMD / "60-coplay-uinput.rules").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(rules) == 1
    pairs = dict(re.findall(r'([A-Z_]+)(?:\+)?[=!]=?"([^"]*)"', rules[0]))
    assert pairs == {
        "KERNEL": "uinput",
        "GROUP": "coplay",
        "MODE": "0660",
        "OPTIONS": "static_node=uinput",
    }


def test_modules_load_file_loads_uinput() -> None:
    lines = [
        line.strip()
        for line in (SYSTEMD / "coplay-uinput.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["uinput"]


def test_example_configs_load_with_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "coplay-app-secret").write_text("app-secret-for-the-test\n")
    (creds / "jwt-secret").write_text("x" * 40 + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds), "XDG_STATE_HOME": str(tmp_path / "state")}
    host = load_host_config(SYSTEMD / "host.toml", env)
    assert host.link.app_client_secret is not None
    assert host.link.app_client_secret.reveal() == "app-secret-for-the-test"
    relay = load_relay_config(SYSTEMD / "relay.toml", env)
    assert relay.apps[0].hosts == frozenset({"streamer"})


def test_env_example_holds_no_real_secret() -> None:
    for line in (SYSTEMD / "coplay-host.env.example").read_text().splitlines():
        if line.startswith("COPLAY_"):
            assert line.split("=", 1)[1].startswith("replace-with-")
