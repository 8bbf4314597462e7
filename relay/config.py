"""host.toml and guest.toml: the ``[relay]`` section they share, ``[host]`` and ``[guest]``.

Each file is one ``msgspec.Struct`` tree with ``forbid_unknown_fields``,
decoded in one call (:func:`relay.configfile.load_toml`); value limits live in
the types and cross-field checks in ``__post_init__``. Every error becomes a
:class:`~relay.errors.ConfigError` whose one line names the file and the field
path (``$.host.seats[0]``), and the CLIs exit 78 on it. Secrets are resolved
after decoding (see :mod:`relay.secrets`) and never come from the command
line. relay.toml is :mod:`relay.service.config`; where files live,
:mod:`relay.locations`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from relay.configfile import NameStr, OptionalName, PrefixStr, check_url, load_toml
from relay.errors import ConfigError
from relay.locations import stable_device_id
from relay.secrets import Secret, section_secret
from relay.topics import is_valid_name

SeatNo = Annotated[int, Meta(ge=1, le=16)]
MAX_SEATS: Final = 7
MAX_BROKER_URLS: Final = 16

BROKER_SCHEMES: Final = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
SINK_KINDS: Final = ("uinput", "log", "jsonl", "null")

ENV_APP_CLIENT_SECRET: Final = "COPLAY_APP_CLIENT_SECRET"  # noqa: S105 (a variable name, not a secret)
ENV_MQTT_PASSWORD: Final = "COPLAY_MQTT_PASSWORD"  # noqa: S105 (a variable name, not a secret)
ENV_INVITE: Final = "COPLAY_INVITE"


# ---------------------------------------------------------------- [relay] (host + guest)


class RelaySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How to reach the token API and the broker, and who we are.

    A guest.toml may instead hold a join link (``invite`` or ``invite_file``):
    then the relay's redeem answer says who and where, and username, session,
    the app credentials and the addresses here are not used.
    """

    username: OptionalName = ""
    session: OptionalName = ""
    api_url: str = "http://127.0.0.1:8080"
    # one URL, or a list of a cluster's nodes tried in turn on reconnect (one scheme for all)
    broker_url: str | Annotated[list[str], Meta(min_length=1, max_length=MAX_BROKER_URLS)] = (
        "mqtt://127.0.0.1:1883"
    )
    app_id: NameStr = "coplay"
    app_client_id: str = "streamer-app"
    app_client_secret: str = ""
    app_client_secret_file: str = ""
    password: str = ""
    password_file: str = ""
    device_id: OptionalName = ""
    topic_prefix: PrefixStr = "coplay"
    ca_file: str = ""
    tls_verify: bool = True
    mqtt_version: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: Annotated[int, Meta(ge=5, le=600)] = 15
    token_lifetime_s: Annotated[int, Meta(ge=60, le=30 * 86400)] = 86400
    # 0 on a NATS cluster: with clean sessions QoS 1 adds nothing across reconnects, and there
    # every QoS 1 subscription is a replicated JetStream consumer that a lost node must re-elect
    subscribe_qos: Literal[0, 1] = 1
    invite: str = ""  # guest.toml only: a join link (or invite_file, or COPLAY_INVITE)
    invite_file: str = ""

    def __post_init__(self) -> None:
        if not (self.invite or self.invite_file):
            for name in ("username", "session"):
                if not getattr(self, name):
                    raise ValueError(f"{name}: missing required key")
        if self.api_url:
            check_url("api_url", self.api_url, ("http", "https"), "http(s)://HOST[:PORT][/PATH]")
        urls = broker_urls(self.broker_url)
        for i, url in enumerate(urls):
            check_url(
                "broker_url" if isinstance(self.broker_url, str) else f"broker_url[{i}]",
                url,
                BROKER_SCHEMES,
                "mqtt://, mqtts://, ws:// or wss:// with a host",
            )
        if len({urlsplit(url).scheme for url in urls}) > 1:
            raise ValueError("broker_url: every URL in the list must use the same scheme")


def broker_urls(value: str | list[str]) -> tuple[str, ...]:
    """``broker_url`` as a tuple of URLs (a single URL is a list of one)."""
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """The ``[relay]`` section with its secrets resolved: everything tokens and link need."""

    api_url: str
    broker_url: str  # the first of broker_urls
    app_id: str
    app_client_id: str
    app_client_secret: Secret | None
    username: str
    password: Secret | None
    device_id: str
    session: str
    topic_prefix: str
    ca_file: str
    tls_verify: bool
    mqtt_version: Literal["3.1.1", "5"]
    keepalive_s: int
    token_lifetime_s: int
    broker_urls: tuple[str, ...] = ()  # every broker URL, tried in turn; () = (broker_url,)
    subscribe_qos: int = 1  # the highest QoS the link subscribes with

    @property
    def client_id(self) -> str:
        """The MQTT client id: ``device_id@app_id``."""
        return f"{self.device_id}@{self.app_id}"

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in (self.app_client_secret, self.password) if s)


# ---------------------------------------------------------------- [host] and [guest]


class HostSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Seats, who may take them, the safety timers and where pad states go."""

    # at most 7 seats: the busiest HostState (7 seats, 64-character names) fits in 512 bytes
    seats: Annotated[list[SeatNo], Meta(min_length=1, max_length=MAX_SEATS)] = msgspec.field(
        default_factory=lambda: [2]
    )
    allow: list[str] = msgspec.field(default_factory=list)
    stale_ms: Annotated[int, Meta(ge=20, le=60_000)] = 250
    idle_s: Annotated[int, Meta(ge=1, le=86_400)] = 60
    sink: str = "uinput"
    status_interval_s: Annotated[float, Meta(ge=0)] = 10.0
    rumble_cap_ms: Annotated[int, Meta(ge=1, le=10_000)] = 2000
    # every sink write failing this long: exit 1 so systemd restarts the host
    sink_fail_s: Annotated[float, Meta(ge=1, le=600)] = 10.0

    def __post_init__(self) -> None:
        if len(set(self.seats)) != len(self.seats):
            raise ValueError(f"seats: must be distinct, got {self.seats}")
        self.allowed()  # validates the entries
        try:
            check_sink(self.sink)
        except ValueError as exc:
            raise ValueError(f"sink: {exc}") from exc

    def allowed(self) -> dict[str, int | None]:
        """``allow`` as {user: fixed seat or None}."""
        result: dict[str, int | None] = {}
        for i, entry in enumerate(self.allow):
            user, sep, seat = (part.strip() for part in entry.partition("="))
            if not is_valid_name(user):
                raise ValueError(f"allow[{i}]: {entry!r}: expected USER or 'USER = SEAT'")
            if user in result:
                raise ValueError(f"allow[{i}]: {user!r} is listed twice")
            if sep:
                if not seat.isdigit() or int(seat) not in self.seats:
                    raise ValueError(f"allow[{i}]: {entry!r}: seat must be one of {self.seats}")
                result[user] = int(seat)
            else:
                result[user] = None
        return result


def check_sink(sink: str) -> str:
    """Validate a ``--sink``/``sink`` value: uinput | log | jsonl:PATH | null."""
    kind, sep, arg = sink.partition(":")
    if kind not in SINK_KINDS or (kind == "jsonl") != bool(sep and arg):
        raise ValueError(f"sink must be uinput, log, jsonl:PATH or null, got {sink!r}")
    return sink


class GuestSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which pad to read, and how often to send it."""

    source: str = "auto"
    name: Annotated[str, Meta(max_length=64)] = ""
    rate_hz: Annotated[int, Meta(ge=1, le=1000)] = 60
    max_rate_hz: Annotated[int, Meta(ge=1, le=2000)] = 500
    deadzone: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.0
    rumble_cap_ms: Annotated[int, Meta(ge=1, le=10_000)] = 2000
    window: bool = False
    pad_wake: bool = True  # wake on the pad's device node (Linux); false: poll the pad

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("source: must be auto, virtual, an index, a name or a GUID")
        if self.max_rate_hz < self.rate_hz:
            raise ValueError(f"max_rate_hz: {self.max_rate_hz} must be >= rate_hz ({self.rate_hz})")


class HostFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    relay: RelaySection
    host: HostSection = msgspec.field(default_factory=HostSection)


class GuestFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    relay: RelaySection
    guest: GuestSection = msgspec.field(default_factory=GuestSection)


@dataclass(frozen=True, slots=True)
class HostConfig:
    path: Path
    link: LinkSettings
    host: HostSection


@dataclass(frozen=True, slots=True)
class GuestConfig:
    path: Path
    link: LinkSettings
    guest: GuestSection


def _link(
    path: Path, section: RelaySection, env: Mapping[str, str], program: str, persist: bool
) -> LinkSettings:
    app_secret = section_secret(
        path, section, "relay", "app_client_secret", ENV_APP_CLIENT_SECRET, env
    )
    password = section_secret(path, section, "relay", "password", ENV_MQTT_PASSWORD, env)
    if section.api_url and not app_secret:
        raise ConfigError(
            f"{path}: $.relay.app_client_secret: missing; set it, app_client_secret_file, "
            f"or {ENV_APP_CLIENT_SECRET}"
        )
    if section.ca_file and not Path(section.ca_file).expanduser().is_file():
        raise ConfigError(f"{path}: $.relay.ca_file: no such file {section.ca_file}")
    return LinkSettings(
        api_url=section.api_url.rstrip("/"),
        broker_url=broker_urls(section.broker_url)[0],
        broker_urls=broker_urls(section.broker_url),
        subscribe_qos=section.subscribe_qos,
        app_id=section.app_id,
        app_client_id=section.app_client_id,
        app_client_secret=app_secret,
        username=section.username,
        password=password,
        device_id=section.device_id
        or stable_device_id(program, section.username, env, persist=persist),
        session=section.session,
        topic_prefix=section.topic_prefix,
        ca_file=section.ca_file,
        tls_verify=section.tls_verify,
        mqtt_version=section.mqtt_version,
        keepalive_s=section.keepalive_s,
        token_lifetime_s=section.token_lifetime_s,
    )


def load_host_config(
    path: Path, env: Mapping[str, str] | None = None, *, persist: bool = True
) -> HostConfig:
    """``host.toml``; ``persist=False`` (``--check``) writes nothing, not even the device id."""
    env = os.environ if env is None else env
    parsed = load_toml(path, HostFile)
    if parsed.relay.invite or parsed.relay.invite_file:
        raise ConfigError(f"{path}: $.relay.invite: join links are for guest.toml, not the host")
    link = _link(path, parsed.relay, env, "host", persist)
    return HostConfig(path=path, link=link, host=parsed.host)


def load_guest_config(
    path: Path, env: Mapping[str, str] | None = None, *, persist: bool = True
) -> GuestConfig:
    """``guest.toml``; ``persist=False`` (``--check``) writes nothing, not even the device id."""
    env = os.environ if env is None else env
    parsed = load_toml(path, GuestFile)
    link = _link(path, parsed.relay, env, "guest", persist)
    return GuestConfig(path=path, link=link, guest=parsed.guest)


@dataclass(frozen=True, slots=True)
class GuestInvite:
    """A guest.toml that joins with a link: the link, and what else of the file applies."""

    path: Path
    link: Secret
    relay: RelaySection
    guest: GuestSection


def load_guest_invite(path: Path, env: Mapping[str, str] | None = None) -> GuestInvite | None:
    """The join link of a guest.toml (``invite``, ``invite_file`` or ``COPLAY_INVITE``), if any."""
    env = os.environ if env is None else env
    parsed = load_toml(path, GuestFile)
    section = parsed.relay
    if not (section.invite or section.invite_file):
        return None
    link = section_secret(path, section, "relay", "invite", ENV_INVITE, env)
    assert link is not None  # one of them is set, and an empty file is an error
    return GuestInvite(path=path, link=link, relay=section, guest=parsed.guest)
