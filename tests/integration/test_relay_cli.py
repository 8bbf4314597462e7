"""``coplay-relay`` as a real process: exports, config errors, missing extra, clean stops."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from relay.topics import acl
from tests.support.relay_service import ROOT, RelayService


def run_cli(
    service: RelayService, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    service.write_config()
    return subprocess.run(
        [*service.command(*args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env if env is not None else service.env(),
        timeout=30,
        check=False,
    )


@pytest.fixture
def idle(tmp_path: Path) -> RelayService:
    """A relay config that is never served (for the commands that only read it)."""
    return RelayService(tmp_path / "relay", hosts=("streamer", "caster"))


def parse_hocon_block(text: str) -> dict[str, str]:
    """The ``key = value`` pairs of the printed block (flat; enough for our output)."""
    pairs = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s*=\s*(.+?)\s*", line)
        if match and not line.lstrip().startswith("#"):
            pairs[match[1]] = match[2]
    return pairs


def test_emqx_config_matches_the_tokens_and_hides_the_secret(idle: RelayService) -> None:
    result = run_cli(idle, "emqx-config")
    assert result.returncode == 0, result.stderr
    assert idle.jwt_secret not in result.stdout + result.stderr
    assert idle.client_secret not in result.stdout + result.stderr
    pairs = parse_hocon_block(result.stdout)
    assert pairs["mechanism"] == "jwt"
    assert pairs["from"] == "password"
    assert pairs["use_jwks"] == "false"
    assert pairs["algorithm"] == '"hmac-based"'
    assert pairs["secret"].startswith('"file://')
    assert pairs["sub"] == '"${username}"'  # the claim named sub must equal the MQTT username
    assert pairs["cid"] == '"${clientid}"'
    assert pairs["acl_claim_name"] == '"acl"'


def test_emqx_config_references_the_secret_file(idle: RelayService, tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt.secret"
    secret_file.write_text(idle.jwt_secret + "\n")
    idle.write_config()
    text = idle.config_path.read_text()
    idle.config_path.write_text(
        text.replace("[server]\n", f'[server]\njwt_secret_file = "{secret_file}"\n')
    )
    env = idle.env()
    del env["COPLAY_JWT_SECRET"]
    result = subprocess.run(
        idle.command("emqx-config"), capture_output=True, text=True, cwd=ROOT, env=env,
        timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert parse_hocon_block(result.stdout)["secret"] == f'"file://{secret_file}"'
    assert idle.jwt_secret not in result.stdout


def test_emqx_config_show_secret_prints_it(idle: RelayService) -> None:
    result = run_cli(idle, "emqx-config", "--show-secret")
    assert result.returncode == 0, result.stderr
    assert parse_hocon_block(result.stdout)["secret"] == f'"{idle.jwt_secret}"'


def test_mosquitto_acl_has_the_same_rules(idle: RelayService) -> None:
    result = run_cli(idle, "mosquitto-acl")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert "pattern write coplay/+/in/%u" in lines
    assert "pattern read coplay/+/out/%u" in lines
    assert "pattern read coplay/+/host" in lines
    for host in ("caster", "streamer"):
        block = lines[lines.index(f"user {host}") + 1 :][:3]
        rules = acl("host", host, "coplay")
        assert sorted(block) == sorted(
            [f"topic write {t}" for t in rules.pub] + [f"topic read {t}" for t in rules.sub]
        )


def test_check_validates_the_config(idle: RelayService) -> None:
    result = run_cli(idle, "--check")
    assert (result.returncode, result.stdout.strip()) == (0, f"{idle.config_path}: ok")


def test_missing_jwt_secret_is_exit_78(idle: RelayService) -> None:
    env = idle.env()
    del env["COPLAY_JWT_SECRET"]
    result = run_cli(idle, "serve", env=env)
    assert result.returncode == 78
    assert "jwt_secret" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_relay_extra_is_one_sentence_and_exit_78(idle: RelayService) -> None:
    idle.write_config()
    code = (
        "import sys; sys.modules['litestar'] = None; from relay.cli import main; "
        f"sys.exit(main(['serve', '--config', {str(idle.config_path)!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
        env=idle.env(), timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 78
    assert "pip install 'coplay[relay]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_line_and_exit_78(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    running = relay_service_factory(ws=False)
    clash = relay_service_factory(start=False, api_port=running.api_port, ws=False)
    result = run_cli(clash, "serve")
    assert result.returncode == 78
    assert "api_listen" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_relay_cleanly(
    relay_service_factory: Callable[..., RelayService], sig: signal.Signals
) -> None:
    service = relay_service_factory()
    assert service.proc is not None
    service.proc.send_signal(sig)
    assert service.proc.wait(15) == 0
    assert "relay_stopped" in service.log_text()
    assert service.jwt_secret not in service.log_text()


def test_ephemeral_secret_serves_without_a_configured_secret(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    service = relay_service_factory(start=False, ws=False)
    service.write_config()
    text = service.config_path.read_text()
    service.config_path.write_text(
        text.replace("[server]\n", "[server]\nephemeral_secret = true\n")
    )
    env = service.env()
    del env["COPLAY_JWT_SECRET"]
    proc = subprocess.Popen(
        [*service.command("serve"), "--log-format", "json"], stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        lines = []
        for raw in proc.stderr:
            lines.append(raw.decode())
            if "relay_ready" in lines[-1]:
                break
        assert any("ephemeral_jwt_secret" in line for line in lines)
        token = service.user_token("alice")  # write_config must not be called again here
        assert token.count(".") == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        assert proc.stderr is not None
        proc.stderr.close()
    assert code == 0
