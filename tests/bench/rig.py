"""The two brokers a benchmark runs through, each able to start a real host and a real guest.

:class:`MosquittoRig` uses a Mosquitto with passwords (``api_url = ""``);
:class:`EmbeddedRig` uses ``coplay-relay serve`` (embedded broker + token API),
and host and guest fetch their tokens over HTTP as in production. Both hand out
the logins the bare paho baseline uses on the same broker: Mosquitto passwords,
or user tokens from the relay (client id ``cid(device_id)``).

A rig isolates each measurement by a :class:`Place`: a fresh topic prefix on
Mosquitto, a fresh session name under the relay's fixed prefix.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from tests.bench.baseline import Login
from tests.support.guest_proc import GuestProcess, write_guest_config
from tests.support.host_process import HostProcess
from tests.support.mosquitto import Mosquitto
from tests.support.relay_service import RelayService

GUEST = "alice"
HOST = "streamer"


@dataclass(frozen=True)
class Place:
    prefix: str
    session: str


def _tag() -> str:
    return uuid.uuid4().hex[:8]


class Rig(Protocol):
    name: str

    @property
    def port(self) -> int: ...

    def place(self) -> Place: ...

    def host(self, workdir: Path, place: Place, *, stale_ms: int = 250) -> HostProcess: ...

    def guest(
        self,
        workdir: Path,
        place: Place,
        *,
        rate_hz: int = 60,
        env: dict[str, str] | None = None,
        extra: str = "",
    ) -> GuestProcess:
        """A guest process; ``env`` added to its environment, ``extra`` to its [guest] section."""
        ...

    def logins(self) -> tuple[Login, Login]:
        """(publisher as the guest user, subscriber as the host user) for the baseline."""
        ...


@dataclass
class MosquittoRig:
    broker: Mosquitto
    name: str = "mosquitto"

    @property
    def port(self) -> int:
        return self.broker.port

    def place(self) -> Place:
        return Place(f"b{_tag()}", "s1")

    def host(self, workdir: Path, place: Place, *, stale_ms: int = 250) -> HostProcess:
        return HostProcess(
            workdir,
            self.port,
            self.broker.passwords[HOST],
            place.prefix,
            session=place.session,
            stale_ms=stale_ms,
        )

    def guest(
        self,
        workdir: Path,
        place: Place,
        *,
        rate_hz: int = 60,
        env: dict[str, str] | None = None,
        extra: str = "",
    ) -> GuestProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        config = write_guest_config(
            workdir / "guest.toml",
            self.broker,
            place.prefix,
            session=place.session,
            rate_hz=rate_hz,
            extra=extra,
        )
        return GuestProcess(config, self.broker.passwords[GUEST], workdir, env=env)

    def logins(self) -> tuple[Login, Login]:
        pw = self.broker.passwords
        return Login(GUEST, pw[GUEST]), Login(HOST, pw[HOST])


@dataclass
class TokenHostProcess(HostProcess):
    """A host that fetches its broker token from the relay's token API (no password)."""

    api_url: str = ""
    app_id: str = "coplay"
    app_client_id: str = ""
    app_client_secret: str = field(default="", repr=False)

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text().replace('api_url = ""\n', self._relay_lines(), 1)
        path.write_text(text)
        self.extra_env["COPLAY_APP_CLIENT_SECRET"] = self.app_client_secret
        return path

    def _relay_lines(self) -> str:
        return (
            f'api_url = "{self.api_url}"\n'
            f'app_id = "{self.app_id}"\n'
            f'app_client_id = "{self.app_client_id}"\n'
        )


@dataclass
class EmbeddedRig:
    relay: RelayService
    name: str = "embedded"

    @property
    def port(self) -> int:
        return self.relay.mqtt_port

    def place(self) -> Place:
        return Place(self.relay.topic_prefix, f"s{_tag()}")

    host_class: ClassVar[type[TokenHostProcess]] = TokenHostProcess
    guest_relay_extra: ClassVar[str] = ""  # more [relay] lines for the guest

    @property
    def host_port(self) -> int:
        return self.port

    @property
    def guest_broker_url(self) -> str:
        return self.relay.broker_url

    def host(self, workdir: Path, place: Place, *, stale_ms: int = 250) -> HostProcess:
        return self.host_class(
            workdir,
            self.host_port,
            "",
            place.prefix,
            session=place.session,
            stale_ms=stale_ms,
            api_url=self.relay.api_url,
            app_id=self.relay.app_id,
            app_client_id=self.relay.client_id,
            app_client_secret=self.relay.client_secret,
        )

    def guest(
        self,
        workdir: Path,
        place: Place,
        *,
        rate_hz: int = 60,
        env: dict[str, str] | None = None,
        extra: str = "",
    ) -> GuestProcess:
        return token_guest(
            self.relay,
            self.guest_broker_url,
            workdir,
            place,
            rate_hz=rate_hz,
            env=env,
            extra=extra,
            relay_extra=self.guest_relay_extra,
        )

    def logins(self) -> tuple[Login, Login]:
        pub_dev, sub_dev = f"bp{_tag()}", f"bs{_tag()}"
        return (
            Login(GUEST, self.relay.user_token(GUEST, pub_dev), self.relay.cid(pub_dev)),
            Login(HOST, self.relay.user_token(HOST, sub_dev), self.relay.cid(sub_dev)),
        )


def token_guest(
    relay: RelayService,
    broker_url: str,
    workdir: Path,
    place: Place,
    *,
    rate_hz: int = 60,
    env: dict[str, str] | None = None,
    extra: str = "",
    relay_extra: str = "",
) -> GuestProcess:
    """A virtual-pad guest doing the token flow at ``relay``, on ``broker_url``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "guest.toml"
    config.write_text(
        "[relay]\n"
        f'api_url = "{relay.api_url}"\n'
        f'broker_url = "{broker_url}"\n'
        f'app_id = "{relay.app_id}"\n'
        f'app_client_id = "{relay.client_id}"\n'
        f'username = "{GUEST}"\n'
        f'session = "{place.session}"\n'
        f'topic_prefix = "{place.prefix}"\n'
        f'device_id = "g{_tag()}"\n'
        "keepalive_s = 5\n" + relay_extra + "\n[guest]\n"
        'source = "virtual"\n'
        f"rate_hz = {rate_hz}\n"
        "max_rate_hz = 500\n" + extra
    )
    full_env = {**(env or {}), "COPLAY_APP_CLIENT_SECRET": relay.client_secret}
    return GuestProcess(config, "", workdir, env=full_env)
