"""A host and guests on one PC with default state directories, and brokers without passwords.

Real processes: ``coplay-host`` with a jsonl sink and ``coplay-guest --source
virtual`` driven over stdin, on a real Mosquitto.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.guest_proc import guest_process, write_guest_config
from tests.support.host_process import HostProcess
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.slow

SOAK_S = 60.0  # the bar: a minute side by side with zero reconnects


@pytest.fixture
def anonymous_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto with ``allow_anonymous true`` and no password file (a LAN broker)."""
    broker = Mosquitto(tmp_path / "anon-mosquitto", anonymous=True)
    broker.prepare()
    broker.start()
    yield broker
    broker.stop()


def connects(events: list[dict[str, object]]) -> int:
    return sum(1 for e in events if e.get("event") == "link_connected")


def start_pair(
    tmp_path: Path, broker: Mosquitto, prefix: str, host_password: str, guest_password: str
) -> tuple[HostProcess, Path, dict[str, str]]:
    """A host (not started yet) with the default device id, and a guest config to match.

    Both use one state directory, as two programs of one user on one PC do.
    """
    shared_state = {"XDG_STATE_HOME": str(tmp_path / "one-pc-state")}
    host = HostProcess(
        tmp_path / "host",
        broker_port=broker.port,
        password=host_password,
        prefix=prefix,
        seats=(2, 3),
        device_id="",  # the default: derived from the machine, the program and the username
        extra_env=shared_state,
    )
    config = write_guest_config(tmp_path / "guest.toml", broker, prefix, device_id="")
    return host, config, shared_state


@pytest.mark.timeout(SOAK_S + 60)
def test_host_and_guests_on_one_pc_with_default_ids_never_kick_each_other(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    """Default device ids differ per program and user: a minute side by side, zero reconnects."""
    host, config, shared = start_pair(
        tmp_path, mosquitto, prefix, mosquitto.passwords["streamer"], mosquitto.passwords["alice"]
    )
    with (
        host,
        guest_process(config, mosquitto.passwords["alice"], tmp_path, env=shared) as alice,
        guest_process(
            write_guest_config(tmp_path / "b.toml", mosquitto, prefix, user="bob", device_id=""),
            mosquitto.passwords["bob"],
            tmp_path,
            env=shared,
        ) as bob,
    ):
        host.wait_ready()
        alice.send(press="A")
        host.jsonl.wait_for(lambda ls: any(x["user"] == "alice" and x["buttons"] for x in ls))
        deadline = time.monotonic() + SOAK_S
        while time.monotonic() < deadline:  # a soak: watch for any reconnect as it happens
            for name, events in (
                ("host", host.logs.lines()),
                ("alice", alice.events()),
                ("bob", bob.events()),
            ):
                lost = [e for e in events if e.get("event") == "link_lost"]
                assert not lost, f"{name} lost its broker session: {lost}"
            assert host.alive()
            time.sleep(0.5)
        assert connects(host.logs.lines()) == 1
        assert connects(alice.events()) == 1
        assert connects(bob.events()) == 1
        alice.send(release="A")
        host.jsonl.wait_for(
            lambda ls: ls[-1]["user"] == "alice" and ls[-1]["buttons"] == 0 and len(ls) > 1
        )
    assert len(list((tmp_path / "one-pc-state").rglob("device_id"))) == 1  # one machine id


@pytest.mark.timeout(60)
def test_a_broker_without_passwords_works_with_no_password_anywhere(
    tmp_path: Path, anonymous_mosquitto: Mosquitto, prefix: str
) -> None:
    """api_url = "" and no password: the pair connects with usernames only and inputs flow."""
    host, config, shared = start_pair(tmp_path, anonymous_mosquitto, prefix, "", "")
    env = {**shared, "COPLAY_MQTT_PASSWORD": ""}
    with host, guest_process(config, "", tmp_path, env=env) as guest:
        host.wait_ready()
        warned = host.log_lines("broker_does_not_authenticate")
        assert len(warned) == 1
        guest.send(press="B")
        lines = host.jsonl.wait_for(lambda ls: any(x["buttons"] == 2 for x in ls))
        assert {x["user"] for x in lines if x["reason"] == "input"} == {"alice"}
        guest.wait_log(lambda e: e.get("event") == "broker_does_not_authenticate")
    assert "password" not in config.read_text()
