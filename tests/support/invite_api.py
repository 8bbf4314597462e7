"""The relay's token API with invites, served in-process by uvicorn on a free loopback port.

Real HTTP, the real Litestar app and the real SQLite store, but a wall clock the
test moves (:meth:`InviteApi.advance`), so expiry needs no waiting. Three apps:

- ``streamer-app`` (app_id ``coplay``, prefix ``coplay``, hosts ``streamer``), default
  ``guest_tokens = "invite"``;
- ``other-app`` (app_id ``other``, prefix ``other``, hosts ``boss``), a second app;
- ``hosted-app`` (app_id ``hosted``, prefix ``hosted``, hosts ``caster``) with
  ``guest_tokens = "app"``: its own credentials mint guest tokens too.

Everything the service logs is kept in :attr:`InviteApi.events` (unredacted, so a
test can prove no code or secret is ever handed to the logger).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn

from relay.procs import free_port
from relay.secrets import Secret
from relay.service.api import create_app
from relay.service.claims import TokenIssuer
from relay.service.config import AppCredentials
from relay.service.invite_store import InviteStore
from relay.service.invites import InviteService, invite_routes
from relay.service.ratelimit import RateLimiter
from relay.service.token_service import TokenService

GUEST_TOKEN_S = 600
PUBLIC_URL = "https://relay.example.test:8443"
BROKER_URL = "mqtts://relay.example.test:8883"
WS_URL = "wss://relay.example.test:8084/mqtt"


class WallClock:
    """time.time() that only moves when told to (after starting at the real time)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A logger that keeps every event and its fields."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    info = warning = error = _record

    def text(self) -> str:
        return "\n".join(f"{event} {fields!r}" for event, fields in self.events)


@dataclass
class App:
    client_id: str
    app_id: str
    prefix: str
    host: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    guest_tokens: str = "invite"

    def credentials(self) -> AppCredentials:
        return AppCredentials(
            self.app_id,
            self.client_id,
            Secret(self.secret),
            frozenset({self.host}),
            topic_prefix=self.prefix,
            guest_tokens="app" if self.guest_tokens == "app" else "invite",
        )


@dataclass
class InviteApi:
    url: str
    clock: WallClock
    store: InviteStore
    jwt_secret: str
    apps: dict[str, App]
    recorder: Recorder
    revoked_calls: list[list[int]]
    store_path: Path

    @property
    def main(self) -> App:
        return self.apps["streamer-app"]

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def post(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": token} if token else {}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=10)

    def app_token(self, client_id: str, secret: str) -> httpx.Response:
        return self.post(
            "/openapi/rm/app/token", {"appClientId": client_id, "appClientSecret": secret}
        )

    def user_token(
        self, app_token: str, username: str, cid: str, expires_in: int | None = 86400
    ) -> httpx.Response:
        body: dict[str, Any] = {"username": username, "cid": cid}
        if expires_in is not None:
            body["expires_in"] = expires_in
        return self.post("/openapi/rm/user/token", body, token=app_token)

    def token_of(self, reply: httpx.Response) -> str:
        assert reply.status_code == 200, reply.text
        return str(reply.json()["body"]["access_token"])

    def host_token(self, app: App | None = None, device: str = "h1") -> str:
        app = app or self.main
        app_token = self.token_of(self.app_token(app.client_id, app.secret))
        return self.token_of(self.user_token(app_token, app.host, f"{device}@{app.app_id}"))

    def claims(self, token: str) -> dict[str, Any]:
        found: dict[str, Any] = jwt.decode(
            token,
            self.jwt_secret,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False},
        )
        return found

    def invite(self, username: str = "alice", session: str = "s1", **fields: Any) -> str:
        """A new invite's code, created with the main app's host token."""
        reply = self.post(
            "/openapi/rm/invite",
            {"session": session, "username": username, **fields},
            token=self.host_token(),
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["body"]["invite"])

    def redeem(self, code: str) -> httpx.Response:
        return self.post("/openapi/rm/invite/redeem", {"invite": code})


@pytest.fixture
def invite_api(tmp_path: Path) -> Iterator[InviteApi]:
    """The token API with invites, in-process on a free port; stopped at teardown."""
    clock = WallClock()
    jwt_secret = secrets.token_urlsafe(36)
    apps = {
        a.client_id: a
        for a in (
            App("streamer-app", "coplay", "coplay", "streamer"),
            App("other-app", "other", "other", "boss"),
            App("hosted-app", "hosted", "hosted", "caster", guest_tokens="app"),
        )
    }
    creds = tuple(a.credentials() for a in apps.values())
    recorder = Recorder()
    store = InviteStore(tmp_path / "relay.sqlite3", clock=clock, max_live=8)
    issuer = TokenIssuer(Secret(jwt_secret), clock=clock)
    revoked: list[list[int]] = []

    def on_revoke(ids: Any) -> int:
        revoked.append(list(ids))
        return 0

    invites = InviteService(
        creds,
        issuer,
        store,
        public_url=PUBLIC_URL,
        broker_url=BROKER_URL,
        ws_url=WS_URL,
        log=recorder,
        on_revoke=on_revoke,
    )
    service = TokenService(
        creds, issuer, 86400, recorder, invites=store, guest_token_s=GUEST_TOKEN_S
    )
    app = create_app(
        service,
        RateLimiter(100_000),
        recorder,
        extra_routes=lambda strict: invite_routes(invites, strict),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="invite-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.01)  # uvicorn has no started event to await
    try:
        yield InviteApi(
            f"http://127.0.0.1:{port}",
            clock,
            store,
            jwt_secret,
            apps,
            recorder,
            revoked,
            tmp_path / "relay.sqlite3",
        )
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
