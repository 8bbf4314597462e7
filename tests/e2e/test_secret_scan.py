"""The secret scan of the e2e suite: no secret and no token in any line a process logged.

Every process of the suite (relays, hosts, guests, Mosquitto) logs under the
session's :class:`~tests.support.stack.Ledger`, which also holds every secret
handed out (app client secrets, JWT secrets, broker passwords, the wrong
secrets of the refusal tests). Tokens are found by shape: a JWT's header and
claims are base64url JSON, so they start with ``eyJ``. The ``stack`` fixture
scans each test's logs when it ends and the ledger scans the whole session at
its end (tests/e2e/conftest.py), so no test order matters; this file proves the
scanner finds what it must.
"""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from tests.e2e.conftest import assert_no_leaks
from tests.support.stack import Ledger


def test_the_scanner_finds_a_planted_secret_and_a_planted_token(tmp_path: Path) -> None:
    """The scan itself works: a secret and a real JWT in a log line are both reported."""
    ledger = Ledger(tmp_path / "logs")
    ledger.root.mkdir()
    secret = "planted-" + "s" * 24
    ledger.secret("planted secret", secret)
    token = jwt.encode({"sub": "alice", "exp": 2**31}, "k" * 32, algorithm="HS256")
    (ledger.root / "host.log").write_text(
        '{"event": "host_ready"}\n'
        f'{{"event": "oops", "password": "{secret}"}}\n'
        f'{{"event": "oops", "note": "Bearer {token}"}}\n'
    )
    (ledger.root / "config.toml").write_text(f'secret = "{secret}"\n')  # not a log: not scanned
    broker_log = tmp_path / "mosquitto.log"
    broker_log.write_text(f"error: {token[:60]}\n")
    ledger.track(broker_log)

    lines, leaks = ledger.scan()

    assert lines == 4
    assert [(leak.path.name, leak.line, leak.what) for leak in leaks] == [
        ("host.log", 2, "planted secret (0)"),
        ("host.log", 3, "a JWT"),
        ("mosquitto.log", 1, "a JWT"),
    ]
    assert secret not in str(leaks[0]) and token not in str(leaks[1])


def test_the_stack_fixture_fails_a_test_whose_processes_leaked_or_logged_nothing(
    tmp_path: Path,
) -> None:
    """The per-test check errors on a leak and on an empty scan (it must have read something)."""
    ledger = Ledger(tmp_path / "logs")
    ledger.root.mkdir()
    area = ledger.area("t")
    with pytest.raises(pytest.fail.Exception, match="read no log lines"):
        assert_no_leaks(ledger, area, "t")
    ledger.secret("planted", "p" * 24)
    (area / "guest.log").write_text('{"event": "guest_status"}\n')
    assert assert_no_leaks(ledger, area, "t") == 1
    (area / "guest.log").write_text('{"event": "x", "s": "' + "p" * 24 + '"}\n')
    with pytest.raises(pytest.fail.Exception, match=r"secrets in the logs of t \(1 of 1 lines\)"):
        assert_no_leaks(ledger, area, "t")
