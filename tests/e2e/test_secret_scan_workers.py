"""The parallel run's last scan: every worker's logs, for the secrets of every worker."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import Ledger, scan_worker_ledgers


def test_a_secret_of_one_worker_in_the_logs_of_another_is_found(tmp_path: Path) -> None:
    """The controller's scan reads each worker's logs and tracked files with all secrets."""
    gw0 = Ledger(tmp_path / "gw0")
    gw1 = Ledger(tmp_path / "gw1")
    for ledger in (gw0, gw1):
        ledger.root.mkdir()
    gw0.secret("relay JWT secret", "j" * 36)
    (gw0.root / "relay.log").write_text('{"event": "relay_ready"}\n')
    (gw1.root / "host.log").write_text('{"event": "host_ready"}\n{"oops": "' + "j" * 36 + '"}\n')
    broker_log = tmp_path / "mosquitto.log"
    broker_log.write_text("warning: nothing secret\n")
    gw1.track(broker_log)

    lines, leaks = scan_worker_ledgers([gw0.record("gw0"), gw1.record("gw1")])

    assert lines == 4
    assert [(leak.path.name, leak.line, leak.what) for leak in leaks] == [
        ("host.log", 2, "gw0: relay JWT secret (0)")
    ]
    assert scan_worker_ledgers([gw0.record("gw0")]) == (1, [])
