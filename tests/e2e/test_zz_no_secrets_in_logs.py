"""Last in the e2e suite: no secret and no token in any line any process logged during it.

Every process of the suite (relays, hosts, guests, Mosquitto) logs under the
session's :class:`~tests.support.stack.Ledger`, which also holds every secret
handed out (app client secrets, JWT secrets, broker passwords, the wrong
secrets of the refusal tests). Tokens are found by shape: a JWT's header and
claims are base64url JSON, so they start with ``eyJ``. The file name sorts last,
so pytest runs this after the other e2e tests.
"""

from __future__ import annotations

from pathlib import Path

import jwt

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


def test_no_secret_or_token_in_any_e2e_log(e2e_ledger: Ledger) -> None:
    """Every log line of every e2e process so far is free of secrets and tokens."""
    lines, leaks = e2e_ledger.scan()
    assert not leaks, f"secrets in logs ({len(leaks)} of {lines} lines): " + "; ".join(
        str(leak) for leak in leaks[:20]
    )
