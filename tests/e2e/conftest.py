"""Fixtures of the fault suite: real relay, Mosquitto, host and guest processes per test.

``stack`` gives each test a :class:`~tests.support.stack.Stack` whose processes are
all stopped when the test ends, and then scans every line they logged for secrets
and tokens (the test errors on a leak, and on no lines at all: a scan that read
nothing proves nothing). ``e2e_ledger`` is the session's log directory and the
list of secrets handed out; at the end of the session every log in it (the demo's
too) is scanned once more, whatever subset of tests ran and in whatever order;
in a parallel run each worker scans its own, and the controller scans all of
them once more with the secrets of every worker.
Every test in this directory is marked ``e2e``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Ledger, Stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


def assert_no_leaks(ledger: Ledger, under: Path | None, what: str) -> int:
    """Scan; fail on a leak or when there was nothing to read. Returns the lines read."""
    lines, leaks = ledger.scan(under)
    if not lines:
        pytest.fail(f"secret scan of {what} read no log lines: the processes logged nowhere")
    if leaks:
        shown = "; ".join(str(leak) for leak in leaks[:20])
        pytest.fail(f"secrets in the logs of {what} ({len(leaks)} of {lines} lines): {shown}")
    return lines


@pytest.fixture(scope="session")
def e2e_ledger(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Ledger]:
    """Where every e2e process logs, and every secret any of them was given.

    On an xdist worker the ledger also goes to the controller (``workeroutput``),
    which scans every worker's logs for every worker's secrets (tests/conftest.py).
    """
    ledger = Ledger(tmp_path_factory.mktemp("e2e-logs"))
    yield ledger
    if ledger.log_files():
        workeroutput = getattr(pytestconfig, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["e2e_ledger"] = ledger.record(os.environ["PYTEST_XDIST_WORKER"])
        assert_no_leaks(ledger, None, "the e2e session")


@pytest.fixture
def stack(e2e_ledger: Ledger, request: pytest.FixtureRequest, prefix: str) -> Iterator[Stack]:
    """This test's processes (relays, hosts, guests); all stopped at teardown."""
    made = Stack(e2e_ledger, request.node.name, prefix)
    try:
        yield made
    finally:
        made.close()
    if made.started_any:
        assert_no_leaks(e2e_ledger, made.dir, request.node.name)
