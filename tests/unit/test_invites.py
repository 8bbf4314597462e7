"""Invite pieces without a network: links, durations, the store's rules, the kept redeem,
the listing, and the relay.toml keys of invites."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from guest.join import StoredInvite, invite_path, join, join_kept, link_settings
from host.invites import format_table
from relay.config import load_guest_invite, load_host_config
from relay.errors import AuthError, ConfigError, UsageError
from relay.invites import (
    InviteInfo,
    Redeemed,
    describe_duration,
    join_link,
    parse_duration,
    parse_link,
)
from relay.service.config import load_relay_config
from relay.service.invite_store import InviteStore

JWT = "j" * 40
CODE = "Abc_-" * 7  # 35 url-safe characters


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:  # guest.join's clock is a callable
        return self.now

    def time(self) -> float:  # the relay's WallClock
        return self.now


# ---------------------------------------------------------------- links and durations


def test_join_link_round_trips() -> None:
    link = join_link("https://relay.example:8443/", CODE)
    assert link == f"https://relay.example:8443/join#{CODE}"
    assert parse_link(link) == ("https://relay.example:8443", CODE)
    assert parse_link(f"http://10.0.0.2:8080/coplay/join#{CODE}\n") == (
        "http://10.0.0.2:8080/coplay",
        CODE,
    )


@pytest.mark.parametrize(
    "bad",
    [
        CODE,
        f"https://relay/join?{CODE}",
        f"ftp://relay/join#{CODE}",
        "https://relay/join#short",
        f"https://relay/other#{CODE}",
        f"https:///join#{CODE}",
    ],
)
def test_anything_else_is_a_usage_error_that_never_repeats_it(bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_link(bad)
    assert CODE not in str(caught.value)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("24h", "90m", "7d", "1d12h", "600", "1H")] == [
        86400,
        5400,
        604800,
        129600,
        600,
        3600,
    ]
    for bad in ("", "soon", "30s", "31d", "-5m"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert (describe_duration(90061), describe_duration(59)) == ("1d 1h", "<1m")


# ---------------------------------------------------------------- the store


def test_store_keeps_only_hashes_of_codes_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    store = InviteStore(path, clock=Clock())
    _, code = store.create(app="a", session="s", username="alice", seat=None, ttl_s=600, uses=1)
    made = store.redeem(code)
    assert made is not None
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert code.encode() not in raw
    assert made.client_secret.encode() not in raw
    assert made.client_id.encode() in raw  # an id, not a secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_store_codes_and_secrets_are_long_and_random(tmp_path: Path) -> None:
    store = InviteStore(tmp_path / "db", clock=Clock())
    codes = set()
    for i in range(20):
        _, code = store.create(app="a", session="s", username=f"u{i}", seat=None, ttl_s=60, uses=1)
        assert len(code) >= 22  # >= 128 bits of token_urlsafe
        codes.add(code)
    assert len(codes) == 20
    store.close()


def test_store_prunes_grants_a_day_past_expiry(tmp_path: Path) -> None:
    clock = Clock()
    store = InviteStore(tmp_path / "db", clock=clock)
    old, _ = store.create(app="a", session="s", username="old", seat=None, ttl_s=60, uses=1)
    clock.now += 60 + 86400 + 1
    store.create(app="a", session="s", username="new", seat=None, ttl_s=60, uses=1)
    assert store.grant(old.id) is None
    store.close()


# ---------------------------------------------------------------- the kept redeem


def redeemed(expires_in: int = 3600) -> Redeemed:
    return Redeemed(
        appClientId="inv-0123456789abcdef",
        appClientSecret="s" * 43,
        app_id="coplay",
        username="alice",
        session="friday",
        seat=2,
        topic_prefix="coplay",
        api_url="http://relay:8080",
        broker_url="mqtt://relay:1883",
        ws_url="",
        expires_in=expires_in,
    )


def test_join_keeps_the_redeem_private_and_reuses_it(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    calls: list[str] = []
    clock = Clock()

    def redeem(api_url: str, code: str) -> Redeemed:
        calls.append(api_url)
        return redeemed()

    link = f"http://relay:8080/join#{CODE}"
    path, first = join(link, env, redeem=redeem, clock=clock)
    assert path == invite_path(tmp_path / "coplay", CODE)
    assert CODE not in path.name and CODE not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["expires_at"] == clock.now + 3600
    clock.now += 1800
    _, again = join(link, env, redeem=redeem, clock=clock)
    assert again == first and calls == ["http://relay:8080"]  # one redeem only
    settings = link_settings(again)
    assert (settings.username, settings.session, settings.app_client_id) == (
        "alice",
        "friday",
        "inv-0123456789abcdef",
    )
    assert settings.client_id == f"{first.device_id}@coplay"
    clock.now += 1801
    with pytest.raises(AuthError, match=r"^the invite for 'alice' in session 'friday' expired"):
        join(link, env, redeem=redeem, clock=clock)


def test_a_damaged_kept_redeem_is_redeemed_again(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    path = invite_path(tmp_path / "coplay", CODE)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    _, stored = join(
        f"http://relay/join#{CODE}", env, redeem=lambda a, c: redeemed(), clock=Clock()
    )
    assert isinstance(stored, StoredInvite) and stored.username == "alice"


# ---------------------------------------------------------------- the listing


def test_invites_table_shows_no_secret_and_lines_up() -> None:
    text = format_table(
        [
            InviteInfo("bob", "s1", None, 1, 0, 3590),
            InviteInfo("alice", "s1", 2, 2, 1, 90061),
        ],
        1_800_000_000.0,
    )
    assert text.splitlines() == [
        "USER   SEAT  USES LEFT  REDEEMED  EXPIRES IN  EXPIRES AT (UTC)",
        "bob    any   1          0         59m         2027-01-15 08:59",
        "alice  2     2          1         1d 1h       2027-01-16 09:01",
    ]


# ---------------------------------------------------------------- config keys


def relay_toml(tmp_path: Path, extra_server: str = "", apps: str = "") -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(
        f'[server]\njwt_secret = "{JWT}"\n{extra_server}\n'
        '[[apps]]\nclient_id = "streamer-app"\nclient_secret = "x1234"\nhosts = ["streamer"]\n'
        + apps
    )
    return path


def test_relay_invite_keys_default_and_resolve(tmp_path: Path) -> None:
    config = load_relay_config(relay_toml(tmp_path), env={"XDG_STATE_HOME": str(tmp_path)})
    assert config.public_url == "http://127.0.0.1:8080"
    assert config.state_db == tmp_path / "coplay-relay" / "relay.sqlite3"
    assert config.server.guest_token_s == 600
    assert (config.apps[0].topic_prefix, config.apps[0].guest_tokens) == ("coplay", "invite")
    systemd = load_relay_config(relay_toml(tmp_path), env={"STATE_DIRECTORY": "/var/lib/x"})
    assert systemd.state_db == Path("/var/lib/x/relay.sqlite3")


def test_two_apps_with_one_prefix_are_a_config_error(tmp_path: Path) -> None:
    second = '[[apps]]\napp_id = "b"\nclient_id = "b-app"\nclient_secret = "y1234"\n'
    ok = load_relay_config(relay_toml(tmp_path, apps=second), env={})
    assert [app.topic_prefix for app in ok.apps] == ["coplay", "b"]
    clash = second + 'topic_prefix = "coplay"\n'
    with pytest.raises(ConfigError, match=r"\$\.apps\[1\]: topic_prefix 'coplay' is also"):
        load_relay_config(relay_toml(tmp_path, apps=clash), env={})


@pytest.mark.parametrize(
    ("server", "field"),
    [
        ("guest_token_s = 10", "guest_token_s"),
        ('public_url = "ftp://x"', "public_url"),
        ('public_broker_url = "http://x"', "public_broker_url"),
    ],
)
def test_bad_invite_keys_name_their_field(tmp_path: Path, server: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"\$\.server\.{field}"):
        load_relay_config(relay_toml(tmp_path, server), env={})


def test_guest_toml_with_an_invite_needs_no_username(tmp_path: Path) -> None:
    path = tmp_path / "guest.toml"
    path.write_text(f'[relay]\ninvite = "http://r/join#{CODE}"\n[guest]\nsource = "virtual"\n')
    found = load_guest_invite(path, env={})
    assert found is not None and found.link.reveal().endswith(CODE)
    assert found.guest.source == "virtual"
    (tmp_path / "link").write_text(f"http://r/join#{CODE}\n")
    path.write_text('[relay]\ninvite_file = "link"\n')
    found = load_guest_invite(path, env={})
    assert found is not None and found.link.reveal() == f"http://r/join#{CODE}"
    assert CODE not in repr(found)


def test_host_toml_refuses_an_invite(tmp_path: Path) -> None:
    path = tmp_path / "host.toml"
    path.write_text(f'[relay]\nusername = "s"\nsession = "x"\ninvite = "http://r/join#{CODE}"\n')
    with pytest.raises(ConfigError, match=r"\$\.relay\.invite"):
        load_host_config(path, env={"COPLAY_APP_CLIENT_SECRET": "x"})


def test_join_without_a_link_uses_the_one_live_kept_invite(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    clock = Clock()
    with pytest.raises(UsageError, match="join needs the LINK"):
        join_kept(env, clock)
    _, first = join(f"http://relay/join#{CODE}", env, redeem=lambda a, c: redeemed(), clock=clock)
    assert join_kept(env, clock)[1] == first
    clock.now += 10
    join(f"http://relay/join#{'Z' * 32}", env, redeem=lambda a, c: redeemed(60), clock=clock)
    with pytest.raises(UsageError, match=r"several invites are kept here \(alice in friday, alice"):
        join_kept(env, clock)
    clock.now += 61  # the second one expired: the first is the only live one again
    assert join_kept(env, clock)[1] == first
