"""``--check`` through the real console scripts warns about secrets others may read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "SeCrEt-7c1d0e9a4b3f2a6d8e5f"
HOST = f'[relay]\nusername = "streamer"\nsession = "friday"\napp_client_secret = "{SECRET}"\n'
GUEST_FILE = (
    '[relay]\nusername = "alice"\nsession = "friday"\napp_client_secret_file = "app.secret"\n'
)
RELAY = (
    '[server]\njwt_secret_file = "jwt.secret"\n'
    '[[apps]]\nclient_id = "streamer-app"\nclient_secret = "app-secret-1"\nhosts = ["streamer"]\n'
)


def _check(prog: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPLAY_", "CREDENTIALS_"))}
    env.update(HOME=str(config.parent / "home"), XDG_STATE_HOME=str(config.parent / "state"))
    return subprocess.run(
        [sys.executable, "-m", f"{prog}.cli", "--config", str(config), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_an_inline_secret_in_a_world_readable_config_is_warned_about(tmp_path: Path) -> None:
    config = tmp_path / "host.toml"
    config.write_text(HOST)
    config.chmod(0o644)
    done = _check("host", config)
    assert done.returncode == 0
    assert f"{config} holds a secret inline and is readable by group or others" in done.stderr
    assert "chmod 600" in done.stderr and SECRET not in done.stderr + done.stdout
    config.chmod(0o600)
    done = _check("host", config)
    assert done.returncode == 0 and "warning" not in done.stderr


@pytest.mark.parametrize(
    ("prog", "text", "secret_name"),
    [("guest", GUEST_FILE, "app.secret"), ("relay", RELAY, "jwt.secret")],
)
def test_a_readable_secret_file_is_warned_about(
    tmp_path: Path, prog: str, text: str, secret_name: str
) -> None:
    config = tmp_path / f"{prog}.toml"
    config.write_text(text)
    config.chmod(0o600)
    secret = tmp_path / secret_name
    secret.write_text("Jwt-or-app-secret-0123456789abcdef0123456789abcdef\n")
    secret.chmod(0o640)
    done = _check(prog, config)
    assert done.returncode == 0, done.stderr
    assert f"{secret} holds a secret and is readable by group or others (mode 0640)" in done.stderr
    secret.chmod(0o600)
    done = _check(prog, config)
    assert done.returncode == 0 and "readable by group" not in done.stderr
