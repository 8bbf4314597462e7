"""Config files in-process: DESIGN's keys and defaults, errors, locations, the examples."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from relay.config import (
    MAX_SEATS,
    GuestSection,
    HostSection,
    RelaySection,
    check_sink,
    load_guest_config,
    load_host_config,
)
from relay.configfile import parse_listen
from relay.errors import ConfigError
from relay.locations import config_dir, default_config_path, stable_device_id, state_dir
from relay.secrets import Secret, resolve_secret
from relay.service.config import ServerSection, load_relay_config

SECRET = "SeCrEt-in-config-4f2a9c"
JWT_SECRET = "JwT-SeCrEt-0123456789abcdef0123456789abcdef"
EXAMPLES = Path(__file__).resolve().parents[2] / "systemd" / "examples"

RELAY_OK = '[relay]\nusername = "alice"\nsession = "friday"\n'
HOST_OK = RELAY_OK + f'app_client_secret = "{SECRET}"\n'
APPS_OK = '[[apps]]\nclient_id = "streamer-app"\nclient_secret = "app-secret-1"\n'
RELAY_FILE_OK = f'[server]\njwt_secret = "{JWT_SECRET}"\n' + APPS_OK

Loader = Callable[..., Any]
LOADERS: dict[str, Loader] = {
    "host": load_host_config,
    "guest": load_guest_config,
    "relay": load_relay_config,
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment of the test's own: state (the device id) goes under tmp_path."""
    return {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults


def test_relay_section_defaults_match_design(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_host_config(write(tmp_path, HOST_OK), env)
    link = config.link
    assert link.api_url == "http://127.0.0.1:8080"
    assert link.broker_url == "mqtt://127.0.0.1:1883"
    assert link.app_id == "coplay"
    assert link.app_client_id == "streamer-app"
    assert link.topic_prefix == "coplay"
    assert link.username == "alice"
    assert link.session == "friday"
    assert link.password is None
    assert link.app_client_secret == Secret(SECRET)
    assert link.secrets == (Secret(SECRET),)
    assert link.client_id == f"{link.device_id}@coplay"  # cid = device_id@app_id
    assert link.tls_verify is True


def test_host_section_defaults_match_design(tmp_path: Path, env: dict[str, str]) -> None:
    host = load_host_config(write(tmp_path, HOST_OK), env).host
    assert host.seats == [2]
    assert host.allow == []
    assert host.allowed() == {}
    assert host.stale_ms == 250
    assert host.idle_s == 60
    assert host.sink == "uinput"


def test_guest_section_defaults_match_design(tmp_path: Path, env: dict[str, str]) -> None:
    guest = load_guest_config(write(tmp_path, HOST_OK), env).guest
    assert guest.source == "auto"
    assert guest.rate_hz == 60
    assert guest.max_rate_hz == 500


def test_server_defaults_match_design(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_relay_config(write(tmp_path, RELAY_FILE_OK), env)
    server = config.server
    assert server.api_listen == "127.0.0.1:8080"
    assert server.mqtt_listen == "127.0.0.1:1883"
    assert server.ws_listen == ""
    assert server.max_token_s == 86400
    (app,) = config.apps
    assert (app.app_id, app.client_id, app.hosts) == ("coplay", "streamer-app", frozenset())
    assert app.client_secret == Secret("app-secret-1")
    assert config.jwt_secret == Secret(JWT_SECRET)
    assert set(config.secrets) == {Secret("app-secret-1"), Secret(JWT_SECRET)}


def test_design_keys_exist() -> None:
    """Every key DESIGN documents is a field of its section (more keys are allowed)."""
    fields = {
        RelaySection: """api_url broker_url app_id app_client_id app_client_secret
            app_client_secret_file username password password_file device_id session
            topic_prefix""",
        HostSection: "seats allow stale_ms idle_s sink",
        GuestSection: "source rate_hz max_rate_hz",
        ServerSection: "api_listen mqtt_listen ws_listen jwt_secret jwt_secret_file max_token_s",
    }
    for section, names in fields.items():
        assert set(names.split()) <= set(section.__struct_fields__), section.__name__


# ---------------------------------------------------------------- allow


@pytest.mark.parametrize(
    ("allow", "seats", "expected"),
    [
        ([], [2], {}),
        (["alice"], [2], {"alice": None}),
        (["alice = 3", "bob"], [2, 3], {"alice": 3, "bob": None}),
        (["alice=2"], [2], {"alice": 2}),
        (["  carol   =   4 "], [2, 3, 4], {"carol": 4}),
    ],
)
def test_allowed_parses_user_and_user_equals_seat(
    allow: list[str], seats: list[int], expected: dict[str, int | None]
) -> None:
    assert HostSection(seats=seats, allow=allow).allowed() == expected


@pytest.mark.parametrize(
    ("allow", "where"),
    [
        (["bob = 3"], "allow[0]"),  # seat not in seats
        (["alice", "bob = x"], "allow[1]"),
        (["a/b"], "allow[0]"),
        (["+"], "allow[0]"),
        ([""], "allow[0]"),
        (["= 2"], "allow[0]"),
        (["alice", "alice = 2"], "allow[1]"),  # listed twice
    ],
)
def test_bad_allow_entries(allow: list[str], where: str) -> None:
    with pytest.raises(ValueError, match=re.escape(where)):
        HostSection(seats=[2], allow=allow)


# ---------------------------------------------------------------- errors: one line, file + field

# (loader, file text, the field path the message must name)
BAD: dict[str, tuple[str, str, str]] = {
    "missing-username": ("host", '[relay]\nsession = "s"\n', "$.relay.username"),
    "missing-session": ("guest", '[relay]\nusername = "a"\n', "$.relay.session"),
    "missing-relay": ("host", "[host]\nseats = [2]\n", "$.relay"),
    "empty-file": ("guest", "", "$.relay"),
    "relay-not-a-table": ("host", "relay = 5\n", "$.relay"),
    "unknown-key": ("host", HOST_OK + "colour = 1\n", "$.relay.colour"),
    "unknown-host-key": ("host", HOST_OK + "[host]\nseat = 2\n", "$.host.seat"),
    "unknown-top-level": ("host", HOST_OK + "[extra]\n", "$.extra"),
    "guest-section-in-host": ("host", HOST_OK + "[guest]\n", "$.guest"),
    "host-section-in-guest": ("guest", HOST_OK + "[host]\n", "$.host"),
    "seat-0": ("host", HOST_OK + "[host]\nseats = [0]\n", "$.host.seats[0]"),
    "seat-17": ("host", HOST_OK + "[host]\nseats = [2, 17]\n", "$.host.seats[1]"),
    "seat-str": ("host", HOST_OK + '[host]\nseats = ["2"]\n', "$.host.seats[0]"),
    "seats-empty": ("host", HOST_OK + "[host]\nseats = []\n", "$.host.seats"),
    "seats-too-many": (
        "host",
        HOST_OK + f"[host]\nseats = {list(range(1, MAX_SEATS + 2))}\n",
        "$.host.seats",
    ),
    "seats-repeated": ("host", HOST_OK + "[host]\nseats = [2, 2]\n", "$.host.seats"),
    "session-slash": ("host", HOST_OK.replace('"friday"', '"a/b"'), "$.relay.session"),
    "session-plus": ("guest", HOST_OK.replace('"friday"', '"+"'), "$.relay.session"),
    "session-hash": ("guest", HOST_OK.replace('"friday"', '"#"'), "$.relay.session"),
    "session-empty": ("guest", HOST_OK.replace('"friday"', '""'), "$.relay.session"),
    "session-65": ("host", HOST_OK.replace('"friday"', f'"{"s" * 65}"'), "$.relay.session"),
    "username-space": ("host", HOST_OK.replace('"alice"', '"al ice"'), "$.relay.username"),
    "device-id-slash": ("host", HOST_OK + 'device_id = "a/b"\n', "$.relay.device_id"),
    "app-id-wild": ("host", HOST_OK + 'app_id = "a#"\n', "$.relay.app_id"),
    "prefix-wild": ("host", HOST_OK + 'topic_prefix = "a/+"\n', "$.relay.topic_prefix"),
    "prefix-empty": ("host", HOST_OK + 'topic_prefix = ""\n', "$.relay.topic_prefix"),
    "rate-0": ("guest", HOST_OK + "[guest]\nrate_hz = 0\n", "$.guest.rate_hz"),
    "rate-float": ("guest", HOST_OK + "[guest]\nrate_hz = 60.5\n", "$.guest.rate_hz"),
    "max-rate-below-rate": (
        "guest",
        HOST_OK + "[guest]\nrate_hz = 120\nmax_rate_hz = 60\n",
        "$.guest.max_rate_hz",
    ),
    "source-empty": ("guest", HOST_OK + '[guest]\nsource = ""\n', "$.guest.source"),
    "stale-ms-str": ("host", HOST_OK + '[host]\nstale_ms = "250"\n', "$.host.stale_ms"),
    "stale-ms-0": ("host", HOST_OK + "[host]\nstale_ms = 0\n", "$.host.stale_ms"),
    "idle-0": ("host", HOST_OK + "[host]\nidle_s = 0\n", "$.host.idle_s"),
    "sink-unknown": ("host", HOST_OK + '[host]\nsink = "speaker"\n', "$.host.sink"),
    "sink-jsonl-no-path": ("host", HOST_OK + '[host]\nsink = "jsonl"\n', "$.host.sink"),
    "allow-seat-not-in-seats": (
        "host",
        HOST_OK + '[host]\nseats = [2]\nallow = ["bob = 3"]\n',
        "$.host.allow[0]",
    ),
    "allow-not-a-list": ("host", HOST_OK + '[host]\nallow = "bob"\n', "$.host.allow"),
    "broker-http": ("host", HOST_OK + 'broker_url = "http://h"\n', "$.relay.broker_url"),
    "broker-no-host": ("host", HOST_OK + 'broker_url = "mqtt://"\n', "$.relay.broker_url"),
    "broker-bare": ("guest", HOST_OK + 'broker_url = "127.0.0.1:1883"\n', "$.relay.broker_url"),
    "broker-port": ("host", HOST_OK + 'broker_url = "mqtt://h:99999"\n', "$.relay.broker_url"),
    "broker-port-text": ("host", HOST_OK + 'broker_url = "mqtt://h:x"\n', "$.relay.broker_url"),
    "api-ftp": ("host", HOST_OK + 'api_url = "ftp://h"\n', "$.relay.api_url"),
    "api-no-scheme": ("host", HOST_OK + 'api_url = "127.0.0.1:8080"\n', "$.relay.api_url"),
    "mqtt-version": ("host", HOST_OK + 'mqtt_version = "4"\n', "$.relay.mqtt_version"),
    "keepalive-0": ("host", HOST_OK + "keepalive_s = 0\n", "$.relay.keepalive_s"),
    "tls-verify-str": ("host", HOST_OK + 'tls_verify = "no"\n', "$.relay.tls_verify"),
    "ca-file-missing": ("host", HOST_OK + 'ca_file = "/nonexistent/ca.pem"\n', "$.relay.ca_file"),
    "no-app-secret": ("host", RELAY_OK, "$.relay.app_client_secret"),
    "secret-twice": (
        "host",
        HOST_OK + 'app_client_secret_file = "s.txt"\n',
        "$.relay.app_client_secret",
    ),
    "secret-file-missing": (
        "host",
        RELAY_OK + 'app_client_secret_file = "nowhere"\n',
        "$.relay.app_client_secret_file",
    ),
    "secret-file-empty": (
        "host",
        RELAY_OK + 'app_client_secret_file = "empty.txt"\n',
        "$.relay.app_client_secret_file",
    ),
    "malformed-toml": ("host", HOST_OK + "[host\n", "not valid TOML"),
    "duplicate-key": ("host", HOST_OK + 'session = "again"\n', "not valid TOML"),
    "relay-missing-apps": ("relay", f'[server]\njwt_secret = "{JWT_SECRET}"\n', "$.apps"),
    "relay-apps-empty": ("relay", f'apps = []\n[server]\njwt_secret = "{JWT_SECRET}"\n', "$.apps"),
    "relay-app-no-client-id": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\n[[apps]]\nclient_secret = "x"\n',
        "$.apps[0].client_id",
    ),
    "relay-app-bad-host": (
        "relay",
        RELAY_FILE_OK + 'hosts = ["a b"]\n',
        "$.apps[0].hosts[0]",
    ),
    "relay-app-no-secret": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\n[[apps]]\nclient_id = "a"\n',
        "$.apps[0].client_secret",
    ),
    "relay-apps-repeated": ("relay", RELAY_FILE_OK + APPS_OK, "$.apps"),
    "relay-unknown-key": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\nport = 1\n' + APPS_OK,
        "$.server.port",
    ),
    "relay-bad-api-listen": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\napi_listen = "8080"\n' + APPS_OK,
        "$.server.api_listen",
    ),
    "relay-bad-ws-listen": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\nws_listen = "h:0"\n' + APPS_OK,
        "$.server.ws_listen",
    ),
    "relay-tls-half": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\ntls_cert = "c.pem"\n' + APPS_OK,
        "$.server.tls_key",
    ),
    "relay-max-token-0": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\nmax_token_s = 0\n' + APPS_OK,
        "$.server.max_token_s",
    ),
    "relay-max-below-min-token": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\nmax_token_s = 30\n' + APPS_OK,
        "$.server.max_token_s",
    ),
    "relay-min-token-below-floor": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\nmin_token_s = 4\n' + APPS_OK,
        "$.server.min_token_s",
    ),
    "relay-no-jwt": ("relay", APPS_OK, "$.server.jwt_secret"),
    "relay-short-jwt": (
        "relay",
        '[server]\njwt_secret = "short-but-secret-1"\n' + APPS_OK,
        "$.server.jwt_secret",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_config_errors_name_file_and_field_in_one_line(
    name: str, tmp_path: Path, env: dict[str, str]
) -> None:
    kind, text, where = BAD[name]
    (tmp_path / "s.txt").write_text("x-secret-x")
    (tmp_path / "empty.txt").write_text("\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        LOADERS[kind](path, env)
    message = str(caught.value)
    assert caught.value.exit_code == 78
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert where in message, message
    for secret in (SECRET, JWT_SECRET, "x-secret-x", "short-but-secret-1", "app-secret-1"):
        assert secret not in message


def test_not_utf8_is_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    good = HOST_OK.encode() + b'[host]\nsink = "'
    path.write_bytes(good + b'\xff"\n')
    with pytest.raises(
        ConfigError, match=f"c.toml: not valid TOML: not UTF-8 at byte {len(good)}$"
    ):
        load_host_config(path, env)


def test_missing_and_unreadable_files(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file"):
        load_guest_config(tmp_path / "nope.toml", env)
    with pytest.raises(ConfigError, match="cannot read"):
        load_host_config(tmp_path, env)  # a directory


def test_broker_url_credentials_are_not_echoed(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, HOST_OK + 'broker_url = "tcp://bob:hunter2hunter2@h:1883"\n')
    with pytest.raises(ConfigError) as caught:
        load_host_config(path, env)
    assert "hunter2hunter2" not in str(caught.value)
    assert "tcp://h:1883" in str(caught.value)


# ---------------------------------------------------------------- secrets


def test_secret_precedence_env_then_file_then_inline(tmp_path: Path) -> None:
    source = tmp_path / "c.toml"
    (tmp_path / "f").write_text("  from-file \n")
    kwargs: dict[str, Any] = {"source": source, "field": "relay.x", "env_var": "COPLAY_X"}
    env = {"COPLAY_X": " from-env "}
    assert resolve_secret(inline="", file="f", env=env, **kwargs) == Secret("from-env")
    assert resolve_secret(inline="", file="f", env={}, **kwargs) == Secret("from-file")
    assert resolve_secret(inline="inline", file="", env={}, **kwargs) == Secret("inline")
    assert resolve_secret(inline="", file="", env={"COPLAY_X": ""}, **kwargs) is None


def test_relative_secret_file_prefers_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "beside").write_text("beside-config")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "beside").write_text("from-credentials")
    common: dict[str, Any] = {"source": tmp_path / "c.toml", "field": "f", "inline": ""}
    assert resolve_secret(file="beside", env_var=None, env={}, **common) == Secret("beside-config")
    assert resolve_secret(
        file="beside", env_var=None, env={"CREDENTIALS_DIRECTORY": str(creds)}, **common
    ) == Secret("from-credentials")


def test_secret_hides_itself() -> None:
    secret = Secret("do-not-print-me")
    assert "do-not-print-me" not in repr(secret)
    assert "do-not-print-me" not in str(secret)
    assert "do-not-print-me" not in f"{secret} {[secret]} { ({'k': secret}) }"
    assert secret.reveal() == "do-not-print-me"
    assert not Secret("")


def test_loaded_config_repr_has_no_secret(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_host_config(write(tmp_path, HOST_OK), env)
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.link)


# ---------------------------------------------------------------- small validators


@pytest.mark.parametrize("sink", ["uinput", "log", "null", "jsonl:/tmp/x.jsonl", "jsonl:rel"])
def test_good_sinks(sink: str) -> None:
    assert check_sink(sink) == sink


@pytest.mark.parametrize("sink", ["", "speaker", "jsonl", "jsonl:", "log:x", "null:x", "UINPUT"])
def test_bad_sinks(sink: str) -> None:
    with pytest.raises(ValueError, match="sink"):
        check_sink(sink)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:65535", ("::1", 65535)),
        ("localhost:1883", ("localhost", 1883)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8080", ":8080", "h:", "h:0", "h:65536", "h:x", ""])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)


# ---------------------------------------------------------------- locations and device id

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="XDG/systemd locations")


@linux_only
def test_config_dir_honours_xdg_and_systemd(tmp_path: Path) -> None:
    assert config_dir({"XDG_CONFIG_HOME": "/x/cfg"}) == Path("/x/cfg/coplay")
    assert config_dir({"CONFIGURATION_DIRECTORY": "/etc/svc", "XDG_CONFIG_HOME": "/x"}) == Path(
        "/etc/svc"
    )
    assert config_dir({"COPLAY_CONFIG_DIR": "/mine", "CONFIGURATION_DIRECTORY": "/etc/svc"}) == (
        Path("/mine")
    )
    assert config_dir({}) == Path.home() / ".config" / "coplay"


@linux_only
def test_default_config_path(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert default_config_path("host.toml", env) == tmp_path / "coplay" / "host.toml"
    assert default_config_path("guest.toml", {"CONFIGURATION_DIRECTORY": "/run/c"}) == Path(
        "/run/c/guest.toml"
    )


@linux_only
def test_state_dir_honours_xdg_and_systemd() -> None:
    assert state_dir({"XDG_STATE_HOME": "/x/state"}) == Path("/x/state/coplay")
    # systemd StateDirectory= may list several, colon-separated: the first is ours
    assert state_dir({"STATE_DIRECTORY": "/var/lib/coplay:/var/lib/other"}) == Path(
        "/var/lib/coplay"
    )
    assert state_dir({}) == Path.home() / ".local" / "state" / "coplay"


def test_stable_device_id_persists(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    first = stable_device_id("host", "streamer", env)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", first)
    assert (tmp_path / "coplay" / "device_id").is_file()
    assert stable_device_id("host", "streamer", env) == first
    other = {"XDG_STATE_HOME": str(tmp_path / "elsewhere")}
    assert stable_device_id("host", "streamer", other) != first  # another machine, another id


def test_stable_device_id_differs_per_program_and_username(tmp_path: Path) -> None:
    """A host and guests for two users on one PC get distinct ids (and so distinct cids)."""
    env = {"XDG_STATE_HOME": str(tmp_path)}
    ids = {
        stable_device_id("host", "streamer", env),
        stable_device_id("guest", "alice", env),
        stable_device_id("guest", "bob", env),
        stable_device_id("host", "alice", env),
    }
    assert len(ids) == 4
    assert stable_device_id("guest", "alice", env) in ids  # and each is stable


def test_stable_device_id_replaces_a_damaged_file(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    (tmp_path / "coplay").mkdir()
    (tmp_path / "coplay" / "device_id").write_text("not/valid\n")
    fresh = stable_device_id("guest", "alice", env)
    assert (tmp_path / "coplay" / "device_id").read_text().strip() != "not/valid"
    assert stable_device_id("guest", "alice", env) == fresh


def test_stable_device_id_without_a_writable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {"XDG_STATE_HOME": str(blocker)}  # a file where the directory would go
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", stable_device_id("host", "streamer", env))


def test_check_writes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    """Loading with persist=False (``--check``) creates no state, not even the device id."""
    state = Path(env["XDG_STATE_HOME"])
    before = sorted(state.rglob("*")) if state.exists() else []
    load_host_config(write(tmp_path, HOST_OK), env, persist=False)
    load_guest_config(write(tmp_path, HOST_OK, "g.toml"), env, persist=False)
    after = sorted(state.rglob("*")) if state.exists() else []
    assert after == before


def test_config_device_id_is_used_or_generated(tmp_path: Path, env: dict[str, str]) -> None:
    given = load_host_config(write(tmp_path, HOST_OK + 'device_id = "pc-1"\n'), env)
    assert given.link.client_id == "pc-1@coplay"
    generated = load_host_config(write(tmp_path, HOST_OK, "d.toml"), env)
    assert (Path(env["XDG_STATE_HOME"]) / "coplay" / "device_id").is_file()
    assert generated.link.device_id == stable_device_id("host", generated.link.username, env)
    guest = load_guest_config(write(tmp_path, HOST_OK, "g.toml"), env)
    assert guest.link.client_id != generated.link.client_id  # same user, other program


def test_no_password_and_no_token_api_means_username_only(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """api_url = "" with no password anywhere: a broker without passwords (allow_anonymous)."""
    config = load_guest_config(write(tmp_path, RELAY_OK + 'api_url = ""\n'), env)
    assert config.link.password is None
    assert config.link.api_url == ""


# ---------------------------------------------------------------- the example files


def test_examples_load(tmp_path: Path, env: dict[str, str]) -> None:
    """systemd/examples/*.toml load as shipped, with secrets supplied the documented ways."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "coplay-app-secret").write_text("app-secret-from-credentials\n")
    env = {
        **env,
        "COPLAY_APP_CLIENT_SECRET": SECRET,
        "COPLAY_JWT_SECRET": JWT_SECRET,
        "CREDENTIALS_DIRECTORY": str(creds),
    }
    relay = load_relay_config(EXAMPLES / "relay.toml", env)
    assert relay.apps[0].client_secret == Secret("app-secret-from-credentials")
    assert relay.apps[0].hosts == frozenset({"streamer"})
    host = load_host_config(EXAMPLES / "host.toml", env)
    assert host.link.username in relay.apps[0].hosts
    assert host.link.app_client_id == relay.apps[0].client_id
    assert host.link.app_client_secret == Secret(SECRET)
    guest = load_guest_config(EXAMPLES / "guest.toml", env)
    assert guest.link.session == host.link.session
    assert guest.link.username not in relay.apps[0].hosts


def _keys_in(path: Path) -> set[str]:
    """Every ``key =`` in the file, active or commented out."""
    return set(re.findall(r"^#?\s*([a-z_]+)\s*=", path.read_text(), flags=re.M))


@pytest.mark.parametrize(
    ("example", "sections"),
    [
        ("relay.toml", (ServerSection,)),
        ("host.toml", (RelaySection, HostSection)),
        ("guest.toml", (RelaySection, GuestSection)),
    ],
)
def test_examples_document_every_key(example: str, sections: tuple[type[Any], ...]) -> None:
    """A key added to the config without a line in its example fails here."""
    keys = _keys_in(EXAMPLES / example)
    for section in sections:
        missing = set(section.__struct_fields__) - keys
        assert not missing, f"systemd/examples/{example} does not mention {sorted(missing)}"


def test_sections_forbid_unknown_fields() -> None:
    for section in (RelaySection, HostSection, GuestSection, ServerSection):
        assert section.__struct_config__.forbid_unknown_fields, section.__name__
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"seatz": [2]}, HostSection)


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    """A regex `$` would let "alice\\n" through; names must match whole."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"username": "alice\n", "session": "s"}, RelaySection)
