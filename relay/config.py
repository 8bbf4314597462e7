"""The TOML config files of DESIGN (``relay.toml``, ``host.toml``, ``guest.toml``).

Each file is one ``msgspec.Struct`` tree with ``forbid_unknown_fields``,
decoded in one call; value limits live in the types and cross-field checks in
``__post_init__``. Every error becomes a :class:`~relay.errors.ConfigError`
whose one line names the file and the field path (``$.host.seats[0]``), and
the CLIs exit 78 on it. Secrets are resolved after decoding (see
:mod:`relay.secrets`) and never come from the command line.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import sys
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from relay.errors import ConfigError
from relay.secrets import Secret, resolve_secret
from relay.topics import NAME_PATTERN, PREFIX_PATTERN, is_valid_name

NameStr = Annotated[str, Meta(pattern=f"^{NAME_PATTERN}\\Z")]
PrefixStr = Annotated[str, Meta(pattern=f"^{PREFIX_PATTERN}\\Z")]
OptionalName = Annotated[str, Meta(pattern=f"^({NAME_PATTERN})?\\Z")]
SeatNo = Annotated[int, Meta(ge=1, le=16)]
MAX_SEATS: Final = 7
MAX_BROKER_URLS: Final = 16
Port = Annotated[int, Meta(ge=1, le=65535)]
MIN_TOKEN_FLOOR_S: Final = 5  # [server] min_token_s and max_token_s: no token lives shorter

BROKER_SCHEMES: Final = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
SINK_KINDS: Final = ("uinput", "log", "jsonl", "null")

ENV_APP_CLIENT_SECRET: Final = "COPLAY_APP_CLIENT_SECRET"  # noqa: S105 (a variable name, not a secret)
ENV_MQTT_PASSWORD: Final = "COPLAY_MQTT_PASSWORD"  # noqa: S105 (a variable name, not a secret)
ENV_JWT_SECRET: Final = "COPLAY_JWT_SECRET"  # noqa: S105 (a variable name, not a secret)
ENV_INVITE: Final = "COPLAY_INVITE"


def _check_url(field: str, value: str, schemes: Collection[str], expected: str) -> None:
    """ValueError naming ``field`` unless ``value`` is a URL with one of ``schemes`` and a host.

    The message never echoes a user name or password written into the URL.
    """
    url = urlsplit(value)
    shown = value
    if url.username is not None or url.password is not None:
        shown = value.replace(url.netloc, url.netloc.rpartition("@")[2], 1)
    try:
        url.port  # noqa: B018 (raises ValueError for a port that is not a number in 0-65535)
    except ValueError:
        raise ValueError(f"{field}: bad port in {shown!r}") from None
    if url.scheme not in schemes or not url.hostname:
        raise ValueError(f"{field}: must be {expected}, got {shown!r}")


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"[::1]:8080"`` -> (host, port); ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


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
            _check_url("api_url", self.api_url, ("http", "https"), "http(s)://HOST[:PORT][/PATH]")
        urls = broker_urls(self.broker_url)
        for i, url in enumerate(urls):
            _check_url(
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
            raise ValueError(f"sink: {exc}") from None

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


# ---------------------------------------------------------------- relay.toml


class ServerSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    api_listen: str = "127.0.0.1:8080"
    mqtt_listen: str = "127.0.0.1:1883"
    ws_listen: str = ""
    jwt_secret: str = ""
    jwt_secret_file: str = ""
    ephemeral_secret: bool = False
    max_token_s: Annotated[int, Meta(ge=MIN_TOKEN_FLOOR_S, le=30 * 86400)] = 86400
    # the shortest user token the API issues, whatever a client asks; below 60 only for
    # showing (or testing) token expiry, as clients fetch a new token on every reconnect
    min_token_s: Annotated[int, Meta(ge=MIN_TOKEN_FLOOR_S, le=3600)] = 60
    topic_prefix: PrefixStr = "coplay"
    tls_cert: str = ""
    tls_key: str = ""
    # invites: where friends reach the relay, where grants live, how long a guest token lives
    public_url: str = ""  # default: http(s)://{api_listen}
    state_db: str = "relay.sqlite3"  # relative: in the relay's state directory
    guest_token_s: Annotated[int, Meta(ge=60, le=86400)] = 600
    public_broker_url: str = ""  # default: the host of public_url, mqtt_listen's port
    public_ws_url: str = ""  # default: the host of public_url, ws_listen's port (if any)
    rate_limit_per_min: Annotated[int, Meta(ge=1)] = 120  # failed requests per address
    trusted_proxies: list[str] = msgspec.field(default_factory=list)  # may set X-Forwarded-For
    # the embedded broker's bounds per client (relay/service/limits.py)
    max_packet_bytes: Annotated[int, Meta(ge=512, le=268_435_455)] = 4096
    connect_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 10.0
    max_connections: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    max_subscriptions: Annotated[int, Meta(ge=2, le=100_000)] = 16
    max_pending_out: Annotated[int, Meta(ge=8, le=1_000_000)] = 256
    max_publish_per_s: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    status_interval_s: Annotated[float, Meta(ge=0)] = 60.0  # broker_status log; 0 = never

    def __post_init__(self) -> None:
        if self.public_url:
            _check_url("public_url", self.public_url, ("http", "https"), "http(s)://HOST[:PORT]")
        if self.public_broker_url:
            _check_url(
                "public_broker_url",
                self.public_broker_url,
                ("mqtt", "mqtts"),
                "mqtt(s)://HOST[:PORT]",
            )
        if self.public_ws_url:
            _check_url(
                "public_ws_url", self.public_ws_url, ("ws", "wss"), "ws(s)://HOST[:PORT]/PATH"
            )
        listeners = {"api_listen": self.api_listen, "mqtt_listen": self.mqtt_listen}
        if self.ws_listen:
            listeners["ws_listen"] = self.ws_listen
        for name, value in listeners.items():
            try:
                parse_listen(value)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        for i, entry in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies[{i}]: {entry!r} is not an IP address or network"
                ) from None
        if self.max_token_s < self.min_token_s:
            raise ValueError(
                f"max_token_s: {self.max_token_s} must be >= min_token_s ({self.min_token_s})"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError(
                f"{'tls_key' if self.tls_cert else 'tls_cert'}: tls_cert and tls_key go together"
            )


class AppEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    client_id: Annotated[str, Meta(min_length=1, max_length=128)]
    app_id: NameStr = "coplay"
    client_secret: str = ""
    client_secret_file: str = ""
    hosts: list[NameStr] = msgspec.field(default_factory=list)
    topic_prefix: PrefixStr | None = None  # default: [server] topic_prefix for the first app
    guest_tokens: Literal["invite", "app"] = "invite"  # who may mint guest tokens


class NatsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The NATS cluster that ``coplay-relay nats-callout`` answers logins for."""

    servers: Annotated[list[str], Meta(min_length=1, max_length=MAX_BROKER_URLS)] = msgspec.field(
        default_factory=lambda: ["nats://127.0.0.1:4222"]
    )
    account: NameStr = "COPLAY"  # the account MQTT clients are placed in

    def __post_init__(self) -> None:
        for i, url in enumerate(self.servers):
            _check_url(f"servers[{i}]", url, ("nats", "tls"), "nats:// or tls:// with a host")


class RelayFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    apps: Annotated[list[AppEntry], Meta(min_length=1)]
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    nats: NatsSection = msgspec.field(default_factory=NatsSection)

    def __post_init__(self) -> None:
        ids = [app.client_id for app in self.apps]
        if len(set(ids)) != len(ids):
            raise ValueError("apps: client_id values must be distinct")
        seen: dict[str, int] = {}
        for i in range(len(self.apps)):
            prefix = app_prefix(self, i)
            if prefix in seen:
                raise ValueError(
                    f"apps[{i}]: topic_prefix {prefix!r} is also the prefix of "
                    f"apps[{seen[prefix]}]; each app needs a topic_prefix of its own"
                )
            seen[prefix] = i


def app_prefix(parsed: RelayFile, index: int) -> str:
    """The topic prefix of ``apps[index]``: its own, else ``[server] topic_prefix`` for the
    first app and the app's ``app_id`` for the others."""
    app = parsed.apps[index]
    if app.topic_prefix:
        return app.topic_prefix
    return parsed.server.topic_prefix if index == 0 else app.app_id


@dataclass(frozen=True, slots=True)
class AppCredentials:
    app_id: str
    client_id: str
    client_secret: Secret
    hosts: frozenset[str]
    topic_prefix: str = "coplay"
    guest_tokens: Literal["invite", "app"] = "invite"


@dataclass(frozen=True, slots=True)
class RelayServiceConfig:
    path: Path
    server: ServerSection
    jwt_secret: Secret | None  # None only with ephemeral_secret = true
    apps: tuple[AppCredentials, ...]
    state_db: Path = Path("relay.sqlite3")  # resolved: [server] state_db in the state directory
    nats: NatsSection = field(default_factory=NatsSection)

    @property
    def public_url(self) -> str:
        """``[server] public_url``, or the API's own address: where join links point."""
        server = self.server
        if server.public_url:
            return server.public_url.rstrip("/")
        return f"{'https' if server.tls_cert else 'http'}://{server.api_listen}"

    @property
    def secrets(self) -> tuple[Secret, ...]:
        found = [app.client_secret for app in self.apps]
        if self.jwt_secret:
            found.append(self.jwt_secret)
        return tuple(found)


# ---------------------------------------------------------------- loading

T = TypeVar("T")


def _decode(path: Path, kind: type[T]) -> T:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")  # checked here: TOML is UTF-8, whatever the parser says
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 at byte {exc.start}") from exc
    try:
        return msgspec.toml.decode(text, type=kind)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_field_first(str(exc))}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")
_NAMED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?): (.+)")


def _field_first(message: str) -> str:
    """msgspec says "what - at `$.a.b`"; lead with the full field path instead.

    A missing or unknown key and a ``__post_init__`` message that starts with
    ``"field: "`` name their field, so it is appended to the path.
    """
    what, sep, where = message.rpartition(" - at ")
    where = where.strip("`") if sep else "$"
    what = what if sep else message
    if match := _MISSING.fullmatch(what):
        return f"{where}.{match[1]}: missing required key"
    if match := _UNKNOWN.fullmatch(what):
        return f"{where}.{match[1]}: unknown key"
    if match := _NAMED.fullmatch(what):
        return f"{where}.{match[1]}: {match[2]}"
    return f"{where}: {what}"


def _link(
    path: Path, section: RelaySection, env: Mapping[str, str], program: str, persist: bool
) -> LinkSettings:
    app_secret = resolve_secret(
        source=path,
        field="relay.app_client_secret",
        inline=section.app_client_secret,
        file=section.app_client_secret_file,
        env_var=ENV_APP_CLIENT_SECRET,
        env=env,
    )
    password = resolve_secret(
        source=path,
        field="relay.password",
        inline=section.password,
        file=section.password_file,
        env_var=ENV_MQTT_PASSWORD,
        env=env,
    )
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
    parsed = _decode(path, HostFile)
    if parsed.relay.invite or parsed.relay.invite_file:
        raise ConfigError(f"{path}: $.relay.invite: join links are for guest.toml, not the host")
    link = _link(path, parsed.relay, env, "host", persist)
    return HostConfig(path=path, link=link, host=parsed.host)


def load_guest_config(
    path: Path, env: Mapping[str, str] | None = None, *, persist: bool = True
) -> GuestConfig:
    """``guest.toml``; ``persist=False`` (``--check``) writes nothing, not even the device id."""
    env = os.environ if env is None else env
    parsed = _decode(path, GuestFile)
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
    parsed = _decode(path, GuestFile)
    section = parsed.relay
    if not (section.invite or section.invite_file):
        return None
    link = resolve_secret(
        source=path,
        field="relay.invite",
        inline=section.invite,
        file=section.invite_file,
        env_var=ENV_INVITE,
        env=env,
    )
    assert link is not None  # one of them is set, and an empty file is an error
    return GuestInvite(path=path, link=link, relay=section, guest=parsed.guest)


def load_relay_config(path: Path, env: Mapping[str, str] | None = None) -> RelayServiceConfig:
    env = os.environ if env is None else env
    parsed = _decode(path, RelayFile)
    server = parsed.server
    jwt_secret = resolve_secret(
        source=path,
        field="server.jwt_secret",
        inline=server.jwt_secret,
        file=server.jwt_secret_file,
        env_var=ENV_JWT_SECRET,
        env=env,
    )
    if not jwt_secret and not server.ephemeral_secret:
        raise ConfigError(
            f"{path}: $.server.jwt_secret: missing; set it, jwt_secret_file or "
            f"{ENV_JWT_SECRET} (or ephemeral_secret = true for a throwaway relay)"
        )
    if jwt_secret and len(jwt_secret.reveal()) < 32:
        raise ConfigError(f"{path}: $.server.jwt_secret: too short; use at least 32 characters")
    apps = []
    for i, app in enumerate(parsed.apps):
        secret = resolve_secret(
            source=path,
            field=f"apps[{i}].client_secret",
            inline=app.client_secret,
            file=app.client_secret_file,
            env_var=None,
            env=env,
        )
        if not secret:
            raise ConfigError(f"{path}: $.apps[{i}].client_secret: missing")
        apps.append(
            AppCredentials(
                app.app_id,
                app.client_id,
                secret,
                frozenset(app.hosts),
                topic_prefix=app_prefix(parsed, i),
                guest_tokens=app.guest_tokens,
            )
        )
    state_db = Path(server.state_db).expanduser()
    if not state_db.is_absolute():
        state_db = state_dir(env, relay=True) / state_db
    return RelayServiceConfig(
        path=path,
        server=server,
        jwt_secret=jwt_secret,
        apps=tuple(apps),
        state_db=state_db,
        nats=parsed.nats,
    )


# ---------------------------------------------------------------- locations


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where config files live by default on this platform."""
    env = os.environ if env is None else env
    if env.get("COPLAY_CONFIG_DIR"):
        return Path(env["COPLAY_CONFIG_DIR"])
    if sys.platform == "win32":
        return Path(env.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "coplay"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "coplay"
    if env.get("CONFIGURATION_DIRECTORY"):  # systemd ConfigurationDirectory=
        return Path(env["CONFIGURATION_DIRECTORY"])
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "coplay"


def default_config_path(name: str, env: Mapping[str, str] | None = None) -> Path:
    """``<config dir>/<name>``, falling back to ``/etc/coplay/<name>`` when only that exists."""
    user = config_dir(env) / name
    system = Path("/etc/coplay") / name
    if not user.exists() and system.exists():
        return system
    return user


def state_dir(env: Mapping[str, str] | None = None, *, relay: bool = False) -> Path:
    """Where coplay keeps small state (the device id, invites) on this platform.

    ``relay=True``: the relay service's own directory (``coplay-relay`` beside
    ``coplay``), which is where its systemd unit's ``StateDirectory=`` points.
    """
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if relay:
        return state_dir(env).with_name("coplay-relay")
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "coplay"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "coplay"
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "coplay"


def machine_id(env: Mapping[str, str] | None = None, *, persist: bool = True) -> str:
    """A random id for this machine (this state directory), kept in ``<state dir>/device_id``.

    Made on first use. When the state directory cannot be written, or with
    ``persist=False``, a fresh id is used for this run and nothing is written.
    """
    path = state_dir(env) / "device_id"
    try:
        value = path.read_text(encoding="utf-8").strip()
        if is_valid_name(value):
            return value
    except OSError:
        pass
    value = "d" + uuid.uuid4().hex[:16]
    if persist:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value + "\n", encoding="utf-8")
        except OSError:
            pass
    return value


def stable_device_id(
    program: str, username: str, env: Mapping[str, str] | None = None, *, persist: bool = True
) -> str:
    """The default ``device_id``: stable per machine, program and username (DESIGN, identity).

    A host, a guest for alice and a guest for bob on one PC get three different
    MQTT client ids, so they never take each other's broker session.
    """
    machine = machine_id(env, persist=persist)
    digest = hashlib.sha256(f"{machine}\0{program}\0{username}".encode()).hexdigest()
    return f"{program}-{digest[:16]}"
