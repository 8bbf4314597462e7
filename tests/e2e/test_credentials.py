"""Credentials at the edges: a wrong app secret stops at once; a relay that is down is awaited."""

from __future__ import annotations

import json
import time

from tests.support.stack import Stack, press_and_see, wrong_secret

EXIT_AUTH = 77
PROMPT_S = 10.0  # "at once": well under this, including interpreter start-up


def _plain_lines(text: str) -> list[str]:
    """The stderr lines that are not JSON log lines: what a user reads."""
    lines = []
    for line in text.splitlines():
        try:
            json.loads(line)
        except ValueError:
            if line.strip():
                lines.append(line)
    return lines


def test_wrong_app_secret_exits_77_at_once_with_one_clear_line(stack: Stack) -> None:
    """A 401 on the app credentials is final: exit 77 fast, say so once, never echo the secret."""
    relay = stack.relay()
    secret = wrong_secret()
    started = time.monotonic()
    host = stack.host(relay, app_secret=secret)
    guest = stack.guest(relay, "alice", app_secret=secret)
    assert host.proc is not None
    host_code = host.proc.wait(PROMPT_S + 20)
    host_s = time.monotonic() - started
    guest_code = guest.wait_exit(PROMPT_S + 20)
    guest_s = time.monotonic() - started

    for name, code, elapsed, text in (
        ("coplay-host", host_code, host_s, host.stderr_text()),
        ("coplay-guest", guest_code, guest_s, guest.log_text()),
    ):
        assert code == EXIT_AUTH, f"{name} exited {code}"
        assert elapsed < PROMPT_S, f"{name} took {elapsed:.1f}s to give up"
        plain = _plain_lines(text)
        assert len(plain) == 1, f"{name}: expected one message line, got {plain}"
        assert plain[0].startswith(f"{name}: "), plain[0]
        assert "app credentials" in plain[0] and "app_client_secret" in plain[0], plain[0]
        assert secret not in text and relay.client_secret not in text
    assert "token_api_retry" not in host.stderr_text() + guest.log_text()


def test_relay_down_at_start_is_waited_for(stack: Stack) -> None:
    """Host and guest started before the relay keep retrying, then connect once it is up."""
    relay = stack.relay(start=False)
    host = stack.host(relay)
    guest = stack.guest(relay, "alice")
    host.wait_log("token_api_retry", timeout=20)
    guest.wait_log(lambda e: e.get("event") == "token_api_retry", timeout=20)
    assert host.alive() and guest.alive()
    assert host.jsonl.lines() == []

    relay.start()
    host.wait_ready(timeout=40)
    guest.wait_seated(timeout=40)
    press_and_see(guest, host)
