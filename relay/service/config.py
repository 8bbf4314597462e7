"""relay.toml, the relay service's config: ``[server]``, ``[[apps]]`` and ``[nats]``.

Decoded in one call (:func:`relay.configfile.load_toml`) into :class:`RelayFile`;
cross-field checks in ``__post_init__``; :func:`load_relay_config` resolves the
JWT secret and the apps' client secrets into a :class:`RelayServiceConfig`.
Nothing here imports the ``relay`` extra, so the CLI's ``--check`` and
``exports`` work without it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from relay.config import MAX_BROKER_URLS
from relay.configfile import NameStr, PrefixStr, check_url, load_toml, parse_listen
from relay.errors import ConfigError
from relay.locations import state_dir
from relay.secrets import Secret, section_secret

ENV_JWT_SECRET: Final = "COPLAY_JWT_SECRET"  # noqa: S105 (a variable name, not a secret)
MIN_TOKEN_FLOOR_S: Final = 5  # [server] min_token_s and max_token_s: no token lives shorter


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
            check_url("public_url", self.public_url, ("http", "https"), "http(s)://HOST[:PORT]")
        if self.public_broker_url:
            check_url(
                "public_broker_url",
                self.public_broker_url,
                ("mqtt", "mqtts"),
                "mqtt(s)://HOST[:PORT]",
            )
        if self.public_ws_url:
            check_url(
                "public_ws_url", self.public_ws_url, ("ws", "wss"), "ws(s)://HOST[:PORT]/PATH"
            )
        listeners = {"api_listen": self.api_listen, "mqtt_listen": self.mqtt_listen}
        if self.ws_listen:
            listeners["ws_listen"] = self.ws_listen
        for name, value in listeners.items():
            try:
                parse_listen(value)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        for i, entry in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"trusted_proxies[{i}]: {entry!r} is not an IP address or network"
                ) from exc
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
            check_url(f"servers[{i}]", url, ("nats", "tls"), "nats:// or tls:// with a host")


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


def load_relay_config(path: Path, env: Mapping[str, str] | None = None) -> RelayServiceConfig:
    """``relay.toml`` with its secrets resolved and ``state_db`` placed in the state directory."""
    env = os.environ if env is None else env
    parsed = load_toml(path, RelayFile)
    server = parsed.server
    jwt_secret = section_secret(path, server, "server", "jwt_secret", ENV_JWT_SECRET, env)
    if not jwt_secret and not server.ephemeral_secret:
        raise ConfigError(
            f"{path}: $.server.jwt_secret: missing; set it, jwt_secret_file or "
            f"{ENV_JWT_SECRET} (or ephemeral_secret = true for a throwaway relay)"
        )
    if jwt_secret and len(jwt_secret.reveal()) < 32:
        raise ConfigError(f"{path}: $.server.jwt_secret: too short; use at least 32 characters")
    apps = []
    for i, app in enumerate(parsed.apps):
        secret = section_secret(path, app, f"apps[{i}]", "client_secret", None, env)
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
