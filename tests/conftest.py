"""Fixtures every test tier shares: a real Mosquitto, unique prefixes, raw MQTT clients.

Also the suite's two tiers and its parallel run (``make test`` runs pytest-xdist
workers with ``--dist loadgroup``), all decided here by path, not in test files:

- every test outside ``tests/unit`` is marked ``integration`` (``make unit`` runs
  ``-m "not integration"``, the quick tier);
- tests that must not overlap share an ``xdist_group`` and so run one after the
  other on one worker: the Chromium tests (``BROWSER_GROUP``), the hostile-load
  and flood e2e modules (``LOAD_GROUP``), and the tests of a module that share a
  module-scoped fixture (one broker or relay per module, not one per worker);
- each worker gets HOME and XDG directories of its own (``own_home``), so a
  process started with the default state directory never shares one with a
  process of another worker;
- the e2e secret scan of each worker's logs is repeated on the controller over
  every worker's logs with every worker's secrets (:func:`pytest_sessionfinish`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.nodeid import NodeId

from tests.support.invite_api import invite_api  # noqa: F401
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient
from tests.support.relay_service import relay_service, relay_service_factory  # noqa: F401
from tests.support.stack import scan_worker_ledgers

TESTS = Path(__file__).parent
UNIT = TESTS / "unit"
BROWSER_GROUP = "browser"  # one Chromium at a time on this machine
LOAD_GROUP = "load"  # floods and stalls: timing-sensitive, never two at once
LOAD_MODULES = ("e2e/test_load.py", "e2e/test_fuzz.py", "e2e/test_host_hostile.py")
SHARED_SCOPES = ("module", "class", "package")
HOME_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")
LEDGERS = pytest.StashKey[list[dict[str, Any]]]()


def xdist_group(item: pytest.Item) -> str | None:
    """The group of tests that must run on one worker with ``item`` (None: any worker)."""
    path = Path(str(item.path))
    fixtures = getattr(item, "fixturenames", ())
    if "browser" in fixtures:
        return BROWSER_GROUP
    if any(path == TESTS / name for name in LOAD_MODULES):
        return LOAD_GROUP
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    if any(d[-1].scope in SHARED_SCOPES for d in defs if d):
        return str(path.relative_to(TESTS))
    return None


def set_nodeid(item: pytest.Item, nodeid: str) -> None:
    """Rename an item: pytest 9 reads ``_id`` (a NodeId), pytest 8 and xdist ``_nodeid``."""
    if isinstance(getattr(item, "_id", None), NodeId):
        item._id = NodeId.parse(nodeid)
    else:
        item._nodeid = nodeid


def unique_nodeids(items: list[pytest.Item]) -> None:
    """Give items that share a node id (schemathesis' one per API operation) their names.

    xdist schedules by node id: of several items with one id it would run one.
    """
    seen = Counter(item.nodeid for item in items)
    for item in items:
        if seen[item.nodeid] > 1:
            set_nodeid(item, f"{item.nodeid.rpartition('::')[0]}::{item.name}")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the node ids and xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unique_nodeids(items)
    # xdist's loadgroup sends "nodeid@group" to one worker; it appends the group itself
    # through ``_nodeid``, which pytest 9 no longer reads, so here the group is added too
    suffix = bool(config.getoption("loadgroup", False)) and hasattr(config, "workerinput")
    for item in items:
        if UNIT not in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
        group = xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            if suffix and isinstance(getattr(item, "_id", None), NodeId):
                set_nodeid(item, f"{item.nodeid}@{group}")


@pytest.fixture(scope="session", autouse=True)
def own_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """HOME and the XDG directories of this worker's own (child processes inherit them)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        for name in HOME_VARS[1:]:
            patch.setenv(name, str(home / name.lower().removeprefix("xdg_")))
        yield home


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Controller: keep each finished worker's e2e ledger (its log root and secrets)."""
    record = getattr(node, "workeroutput", {}).get("e2e_ledger")
    if record:
        node.config.stash.setdefault(LEDGERS, []).append(record)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Controller: scan every worker's logs for every worker's secrets; a leak fails the run."""
    records = session.config.stash.get(LEDGERS, [])
    if not records:
        return
    lines, leaks = scan_worker_ledgers(records)
    problem = ""
    if not lines:
        problem = "the secret scan across workers read no log lines"
    elif leaks:
        shown = "; ".join(str(leak) for leak in leaks[:20])
        problem = f"secrets in the e2e logs ({len(leaks)} of {lines} lines): {shown}"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
    if problem:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"FAILED e2e secret scan: {problem}", red=True, bold=True)
    elif reporter is not None:
        reporter.write_line(
            f"e2e secret scan across {len(records)} workers: {lines} lines, no secret"
        )


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One Mosquitto for the whole run (ACL and passwords as a deployment has them)."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.prepare()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own, for tests that kill or restart the broker."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.prepare()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mqtt_client(mosquitto: Mosquitto) -> Iterator[Callable[..., RawClient]]:
    """Factory for raw paho clients on the shared Mosquitto, logged in as a known user."""
    made: list[RawClient] = []

    def make(
        username: str, *, port: int | None = None, password: str | None = None, **kwargs: object
    ) -> RawClient:
        client = RawClient(
            port or mosquitto.port,
            username,
            mosquitto.passwords[username] if password is None else password,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
