"""Fixtures of the fault suite: real relay, Mosquitto, host and guest processes per test.

``stack`` gives each test a :class:`~tests.support.stack.Stack` whose processes are
all stopped when the test ends; ``e2e_ledger`` is the session's log directory and
the list of secrets handed out, which ``test_zz_no_secrets_in_logs`` scans last.
Every test in this directory is marked ``e2e``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Ledger, Stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """Where every e2e process logs, and every secret any of them was given."""
    return Ledger(tmp_path_factory.mktemp("e2e-logs"))


@pytest.fixture
def stack(e2e_ledger: Ledger, request: pytest.FixtureRequest, prefix: str) -> Iterator[Stack]:
    """This test's processes (relays, hosts, guests); all stopped at teardown."""
    made = Stack(e2e_ledger, request.node.name, prefix)
    try:
        yield made
    finally:
        made.close()
