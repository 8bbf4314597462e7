"""The invite endpoints: a host invites a friend, the friend redeems, the host revokes.

``POST /openapi/rm/invite``         host token -> a code and its join link
``POST /openapi/rm/invite/redeem``  the code -> the friend's own app credential and addresses
``POST /openapi/rm/invite/revoke``  host token -> every grant of that user in that session ends
``POST /openapi/rm/invite/list``    host token -> the live grants (never a code or secret)

The wire types live in :mod:`relay.invites` (the clients use the same ones).
A host token is a user token with ``role = "host"`` minted for one of the
relay's apps; a guest token, an app token or none at all is refused (403 /
401). What a friend's credential may then do in the token flow is decided in
:class:`relay.service.token_service.TokenService`. Revoking a grant also asks the
embedded broker to drop that user's connections in that session
(``on_revoke``). Codes and secrets are handed to ``redact`` as they are made, so
no log line can show them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler
from msgspec import Meta

from relay.configfile import parse_listen
from relay.invites import (
    INVITE_PATH,
    LIST_PATH,
    REDEEM_PATH,
    REVOKE_PATH,
    CreateInvite,
    InviteCreated,
    InviteCreatedEnvelope,
    InviteInfo,
    InviteList,
    InviteListEnvelope,
    ListInvites,
    Redeemed,
    RedeemedEnvelope,
    RedeemInvite,
    Revoked,
    RevokedEnvelope,
    RevokeInvite,
    join_link,
)
from relay.service.api import ERRORS, SECURITY_SCHEME, Route
from relay.service.claims import TokenIssuer, UserClaims
from relay.service.config import AppCredentials, RelayServiceConfig
from relay.service.invite_store import InviteStore, TooManyInvites
from relay.service.token_service import ApiError, verified
from relay.tokenwire import FailEnvelope

# One answer for every code that does not work, so the API is no oracle for codes.
REDEEM_REFUSED: Final = "this join link does not work (used up, expired, revoked or mistyped)"


def public_addresses(config: RelayServiceConfig) -> tuple[str, str]:
    """(broker URL, WebSocket URL or "") as a friend reaches them.

    ``public_broker_url``/``public_ws_url`` when set, else the host of
    ``public_url`` with the listeners' ports.
    """
    server = config.server
    host = urlsplit(config.public_url).hostname or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    tls = bool(server.tls_cert)
    broker = server.public_broker_url or (
        f"{'mqtts' if tls else 'mqtt'}://{shown}:{parse_listen(server.mqtt_listen)[1]}"
    )
    ws = server.public_ws_url
    if not ws and server.ws_listen:
        ws = f"{'wss' if tls else 'ws'}://{shown}:{parse_listen(server.ws_listen)[1]}/mqtt"
    return broker, ws


_Whole = Annotated[float, Meta(ge=1, le=2**31 - 1)]


class _CreateInviteCheck(msgspec.Struct):
    """CreateInvite as JSON Schema reads it (3.0 is an integer too); the rest checks the range."""

    session: str
    username: str
    seat: int | _Whole | None = None
    ttl_s: int | _Whole = 86400
    uses: int | _Whole = 1

    def __post_init__(self) -> None:
        for name in ("seat", "ttl_s", "uses"):
            value = getattr(self, name)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"Expected an integer - at `$.{name}`")


class InviteService:
    """What the invite endpoints do, without HTTP."""

    def __init__(
        self,
        apps: tuple[AppCredentials, ...],
        issuer: TokenIssuer,
        store: InviteStore,
        *,
        public_url: str,
        broker_url: str,
        ws_url: str,
        log: Any,
        redact: Callable[[str], None] = lambda value: None,
        on_revoke: Callable[[Sequence[int]], int] | None = None,
    ) -> None:
        self._apps = {app.client_id: app for app in apps}
        self._issuer = issuer
        self._store = store
        self._public_url = public_url.rstrip("/")
        self._broker_url = broker_url
        self._ws_url = ws_url
        self._log = log
        self._redact = redact
        self.on_revoke = on_revoke

    @property
    def store(self) -> InviteStore:
        return self._store

    def host(self, token: str | None) -> tuple[AppCredentials, UserClaims]:
        """The app and claims of a host token; 401 for no or a bad token, 403 for a guest's."""
        claims = verified(token, "a host's user token", self._issuer.verify_user)
        if claims.role != "host":
            raise ApiError(403, "only the streamer's host token may manage invites")
        app = self._apps.get(claims.app or "")
        if app is None:
            raise ApiError(401, "a host token of no app on this relay; fetch a new one")
        if claims.sub not in app.hosts:
            raise ApiError(403, f"{claims.sub!r} is no longer a host of this app")
        return app, claims

    def create(self, token: str | None, request: CreateInvite) -> InviteCreated:
        app, claims = self.host(token)
        if request.username in app.hosts:
            raise ApiError(400, f"username: {request.username!r} is a host; invite guests only")
        try:
            grant, code = self._store.create(
                app=app.client_id,
                session=request.session,
                username=request.username,
                seat=request.seat,
                ttl_s=request.ttl_s,
                uses=request.uses,
            )
        except TooManyInvites as exc:
            raise ApiError(
                429, "too many live invites for this app; revoke some (coplay-host revoke USER)"
            ) from exc
        self._redact(code)
        self._log.info(
            "invite_created",
            by=claims.sub,
            seat=grant.seat,
            uses=grant.uses,
            expires_in=request.ttl_s,
            **grant.log_fields(),
        )
        return InviteCreated(code, join_link(self._public_url, code), request.ttl_s)

    def redeem(self, request: RedeemInvite) -> Redeemed:
        made = self._store.redeem(request.invite)
        app = self._apps.get(made.grant.app) if made else None
        if made is None or app is None:
            self._log.info("invite_refused", reason="redeem refused")
            raise ApiError(401, REDEEM_REFUSED)
        self._redact(made.client_secret)
        grant = made.grant
        self._log.info("invite_redeemed", uses_left=grant.uses_left, **grant.log_fields())
        return Redeemed(
            appClientId=made.client_id,
            appClientSecret=made.client_secret,
            app_id=app.app_id,
            username=grant.username,
            session=grant.session,
            seat=grant.seat,
            topic_prefix=app.topic_prefix,
            api_url=self._public_url,
            broker_url=self._broker_url,
            ws_url=self._ws_url,
            expires_in=grant.seconds_left(self._store.now()),
        )

    def revoke(self, token: str | None, request: RevokeInvite) -> Revoked:
        app, claims = self.host(token)
        ids = self._store.revoke(
            app=app.client_id, session=request.session, username=request.username
        )
        dropped = self.on_revoke(ids) if self.on_revoke is not None and ids else 0
        self._log.info(
            "invite_revoked",
            by=claims.sub,
            user=request.username,
            session=request.session,
            grants=len(ids),
            disconnected=dropped,
        )
        return Revoked(len(ids))

    def list(self, token: str | None, request: ListInvites) -> InviteList:
        app, _ = self.host(token)
        now = self._store.now()
        return InviteList(
            [
                InviteInfo(
                    username=g.username,
                    session=g.session,
                    seat=g.seat,
                    uses_left=g.uses_left,
                    redeemed=g.redeemed,
                    expires_in=g.seconds_left(now),
                )
                for g in self._store.live_grants(app.client_id, request.session)
            ]
        )


def invite_routes(service: InviteService, route: Route) -> list[ControllerRouterHandler]:
    """The four route handlers, declared with the token API's ``route`` (strict bodies)."""
    host_only: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]
    responses = {
        **ERRORS,
        403: ResponseSpec(FailEnvelope, description="not a host token", generate_examples=False),
    }
    responses[400] = ResponseSpec(
        FailEnvelope, description="malformed request, or a host invited", generate_examples=False
    )

    def host_route(
        path: str, kind: type[msgspec.Struct], summary: str, operation_id: str
    ) -> Callable[[Callable[..., Any]], HTTPRouteHandler]:
        """A route only a host token may call (401 without one, 403 for a guest's)."""
        return route(
            path,
            kind,
            responses=responses,
            security=host_only,
            summary=summary,
            operation_id=operation_id,
        )

    async def create(
        request: Request[Any, Any, Any], data: JSONBody[CreateInvite]
    ) -> InviteCreatedEnvelope:
        return InviteCreatedEnvelope(200, "success", service.create(_token(request), data))

    async def redeem(data: JSONBody[RedeemInvite]) -> RedeemedEnvelope:
        return RedeemedEnvelope(200, "success", service.redeem(data))

    async def revoke(
        request: Request[Any, Any, Any], data: JSONBody[RevokeInvite]
    ) -> RevokedEnvelope:
        return RevokedEnvelope(200, "success", service.revoke(_token(request), data))

    async def list_invites(
        request: Request[Any, Any, Any], data: JSONBody[ListInvites]
    ) -> InviteListEnvelope:
        return InviteListEnvelope(200, "success", service.list(_token(request), data))

    redeem_summary = "Redeem a join link's code for the friend's own app credential"
    return [
        host_route(INVITE_PATH, _CreateInviteCheck, CREATE_SUMMARY, "createInvite")(create),
        route(REDEEM_PATH, RedeemInvite, summary=redeem_summary, operation_id="redeemInvite")(
            redeem
        ),
        host_route(REVOKE_PATH, RevokeInvite, REVOKE_SUMMARY, "revokeInvite")(revoke),
        host_route(LIST_PATH, ListInvites, LIST_SUMMARY, "listInvites")(list_invites),
    ]


CREATE_SUMMARY: Final = "Create an invite (a join link) for one friend in one session"
REVOKE_SUMMARY: Final = "End every grant of one user in one session"
LIST_SUMMARY: Final = "List the live grants (never a code, secret or token)"


def _token(request: Request[Any, Any, Any]) -> str | None:
    """The raw token in the Authorization header (no "Bearer"), if any."""
    return request.headers.get("authorization")
