"""The host process's exit codes and one-sentence errors: 77 refused credentials, 78 config or
/dev/uinput problems, never a traceback, never a secret in the output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from host.sinks.uinput import DEVNODE, uinput_fix
from tests.support.host_process import HostProcess
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.slow


def test_refused_password_exits_77_without_leaking_it(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    wrong = "not-the-password-" + "x" * 8
    with HostProcess(tmp_path, mosquitto.port, wrong, prefix) as host:
        assert host.proc is not None
        code = host.proc.wait(45)
    text = host.stderr_text()
    assert code == 77, text
    assert "refused" in text
    assert "Traceback" not in text
    assert wrong not in text
    lines = host.jsonl.lines()
    assert [x["reason"] for x in lines] == ["shutdown"]  # the pad was released on the way out


@pytest.mark.skipif(uinput_fix(DEVNODE) is None, reason="/dev/uinput is usable here")
def test_unusable_uinput_is_one_sentence_and_exit_78(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    host = HostProcess(tmp_path, mosquitto.port, mosquitto.passwords["streamer"], prefix)
    host.sink = "uinput"
    with host:
        assert host.proc is not None
        code = host.proc.wait(30)
    text = host.stderr_text()
    assert code == 78, text
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("coplay-host: cannot create a virtual pad: /dev/uinput")
    assert "modprobe uinput" in last or "60-coplay-uinput.rules" in last


def test_check_validates_the_config(tmp_path: Path, prefix: str) -> None:
    host = HostProcess(tmp_path, 1883, "irrelevant", prefix)
    config = host.write_config()
    result = subprocess.run(
        [sys.executable, "-m", "host.cli", "--check", "--config", str(config)],
        env={"COPLAY_MQTT_PASSWORD": "p" * 12, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": ok")


def test_bad_sink_flag_is_a_config_error(tmp_path: Path, prefix: str) -> None:
    host = HostProcess(tmp_path, 1883, "irrelevant", prefix)
    config = host.write_config()
    result = subprocess.run(
        [sys.executable, "-m", "host.cli", "--config", str(config), "--sink", "jsonl:"],
        env={"COPLAY_MQTT_PASSWORD": "p" * 12, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78
    assert result.stderr.startswith("coplay-host: --sink:")
