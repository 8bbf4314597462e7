"""The invite commands as real processes: the operator's ``coplay-relay invite`` against a
running relay's state, and the one-sentence usage errors of all three programs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.relay_service import ROOT, RelayService

CODE = "Q" * 32


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=60,
        check=False,
    )


def relay_cli(relay: RelayService, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["relay.cli", "invite", *args, "--config", str(relay.config_path)], relay.env())


def test_operator_invite_is_redeemable_at_the_running_relay(relay_service: RelayService) -> None:
    done = relay_cli(relay_service, "--app", "coplay", "--session", "s1", "alice", "--ttl", "2h")
    assert done.returncode == 0, done.stderr
    (link,) = done.stdout.splitlines()
    base, _, code = link.partition("#")
    assert base == f"{relay_service.api_url}/join"
    assert code not in done.stderr
    reply = relay_service.redeem(code)
    assert reply.status_code == 200, reply.text
    body = reply.json()["body"]
    assert (body["username"], body["session"], body["broker_url"]) == (
        "alice",
        "s1",
        relay_service.broker_url,
    )
    assert 7100 < body["expires_in"] <= 7200
    assert code not in relay_service.log_text()


def test_operator_invite_refuses_bad_input_in_one_line(relay_service: RelayService) -> None:
    for args, says in (
        (["--app", "nope", "--session", "s1", "alice"], "is not an app here"),
        (["--app", "coplay", "--session", "s1", "streamer"], "is a host"),
        (["--app", "coplay", "--session", "s1", "alice", "--ttl", "soon"], "--ttl"),
        (["--app", "coplay", "--session", "s1", "alice", "--uses", "0"], "--uses"),
    ):
        done = relay_cli(relay_service, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stdout == ""


def test_host_invite_usage_errors_need_no_relay(tmp_path: Path) -> None:
    config = tmp_path / "host.toml"
    config.write_text(
        '[relay]\napi_url = "http://127.0.0.1:9"\nusername = "streamer"\nsession = "s1"\n'
        'app_client_secret = "x1234"\n'
    )
    for args, says in (
        (["invite"], "invite needs USER"),
        (["invite", "al ice"], "invite needs USER"),
        (["invite", "alice", "--ttl", "forever"], "--ttl"),
        (["invites", "alice"], "invites takes no USER"),
    ):
        done = run(["host.cli", *args, "--config", str(config)])
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr, done.stderr
        assert done.stdout == ""


def test_guest_join_with_something_that_is_not_a_link_is_a_usage_error(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path))
    done = run(["guest.cli", "join", f"http://relay/login#{CODE}"], env)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("coplay-guest: that is not a join link")
    assert CODE not in done.stderr
    done = run(["guest.cli", "join"], env)
    assert done.returncode == 2 and "join needs the LINK" in done.stderr


def test_guest_join_with_an_unknown_code_exits_77_in_one_sentence(
    relay_service: RelayService, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path))
    done = run(["guest.cli", "join", f"{relay_service.api_url}/join#{CODE}"], env)
    assert done.returncode == 77, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "coplay-guest: this join link does not work any more (used up, expired, revoked or "
        "mistyped); ask the streamer for a new join link"
    )
    assert CODE not in done.stderr
    assert not list(tmp_path.rglob("invites/*.json")), "nothing kept for a refused link"


def test_redeem_guessing_is_rate_limited_per_address(relay_service_factory: Any) -> None:
    """A stranger trying codes gets 429 with Retry-After once the address's budget is spent."""
    relay = relay_service_factory(rate_limit_per_min=5)
    statuses = [relay.redeem(f"{i:032d}").status_code for i in range(8)]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    reply = relay.redeem("9" * 32)
    assert reply.status_code == 429 and int(reply.headers["Retry-After"]) >= 1


def test_guest_name_longer_than_64_is_a_usage_error(
    relay_service: RelayService, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path))
    link = relay_service.invite("alice")["url"]
    done = run(["guest.cli", "join", link, "--name", "n" * 65], env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "coplay-guest: --name: 64 characters at most"
