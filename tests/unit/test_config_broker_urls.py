"""``broker_url`` as a list of a cluster's nodes, ``subscribe_qos``, and the ``[nats]`` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import MAX_BROKER_URLS, load_guest_config, load_host_config
from relay.errors import ConfigError
from relay.service.config import load_relay_config

BASE = '[relay]\nusername = "alice"\nsession = "friday"\napp_client_secret = "s3cret-value"\n'
ENV = {"HOME": "/nonexistent", "XDG_STATE_HOME": "/nonexistent/state"}
JWT = "j" * 40
RELAY = '[[apps]]\nclient_id = "streamer-app"\nclient_secret = "x"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_a_list_of_broker_urls_is_kept_in_order(tmp_path: Path) -> None:
    urls = ["mqtt://n1:1883", "mqtt://n2:1884", "mqtt://n3:1885"]
    path = write(tmp_path, BASE + f"broker_url = {urls!r}\n".replace("'", '"'))
    link = load_guest_config(path, env=ENV).link
    assert link.broker_urls == tuple(urls)
    assert link.broker_url == urls[0]  # what logs and single-broker code read


def test_a_single_url_is_a_list_of_one(tmp_path: Path) -> None:
    link = load_host_config(write(tmp_path, BASE + 'broker_url = "mqtt://h:1"\n'), env=ENV).link
    assert link.broker_urls == ("mqtt://h:1",) and link.subscribe_qos == 1


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ('["mqtt://a:1", "http://b:2"]', "$.relay.broker_url[1]"),
        ('["mqtt://a:1", "ws://b:2"]', "$.relay.broker_url"),  # one scheme for all
        ("[]", "$.relay.broker_url"),
        (
            str([f"mqtt://n{i}:1" for i in range(MAX_BROKER_URLS + 1)]).replace("'", '"'),
            "$.relay.broker_url",
        ),
    ],
    ids=["bad-scheme", "mixed", "empty", "too-many"],
)
def test_bad_broker_url_lists_name_the_field(tmp_path: Path, value: str, where: str) -> None:
    path = write(tmp_path, BASE + f"broker_url = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_guest_config(path, env=ENV)
    assert f"{path}: {where}" in str(err.value)


def test_subscribe_qos_is_0_or_1(tmp_path: Path) -> None:
    ok = load_guest_config(write(tmp_path, BASE + "subscribe_qos = 0\n"), env=ENV)
    assert ok.link.subscribe_qos == 0
    with pytest.raises(ConfigError, match=r"\$\.relay\.subscribe_qos"):
        load_guest_config(write(tmp_path, BASE + "subscribe_qos = 2\n"), env=ENV)


def test_nats_section_defaults_and_checks(tmp_path: Path) -> None:
    config = load_relay_config(write(tmp_path, RELAY), env={"COPLAY_JWT_SECRET": JWT})
    assert (config.nats.servers, config.nats.account) == (["nats://127.0.0.1:4222"], "COPLAY")
    text = RELAY + '[nats]\nservers = ["nats://a:4222", "mqtt://b:1883"]\n'
    with pytest.raises(ConfigError, match=r"\$\.nats\.servers\[1\]"):
        load_relay_config(write(tmp_path, text), env={"COPLAY_JWT_SECRET": JWT})
