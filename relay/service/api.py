"""The token API: the two Easemob-compatible endpoints of DESIGN, as a Litestar app.

``POST /openapi/rm/app/token``   app credentials -> app token
``POST /openapi/rm/user/token``  ``Authorization: <app token>`` + username/cid -> user token
``POST /openapi/rm/invite...``   invites (see :mod:`relay.service.invites`)
``GET  /healthz``                liveness
``GET  /schema/openapi.json``    the OpenAPI document

Every answer, success or error, uses the Easemob envelope
``{"code": <status>, "msg": "success" | "fail", "body": ...}`` with a matching
HTTP status; error bodies are one line of text. Litestar's own errors
(validation, unknown route, wrong method, body too large) are mapped into the
same envelope, and anything unexpected becomes a logged 500 (none is expected).
Tokens and secrets are never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import JSONBody
from msgspec import Meta

from relay import __version__
from relay.configfile import field_first
from relay.service.claims import InvalidToken, TokenIssuer, role_for
from relay.service.config import AppCredentials
from relay.service.invite_store import Grant, InviteStore
from relay.service.ratelimit import Network, RateLimiter, client_address, failure_keys
from relay.tokenwire import (
    APP_TOKEN_PATH,
    USER_TOKEN_PATH,
    AppTokenRequest,
    FailEnvelope,
    Lifetime,
    TokenBody,
    TokenEnvelope,
    UserTokenRequest,
)
from relay.topics import is_valid_name

APP_TOKEN_S: Final = 3600
GUEST_TOKEN_S: Final = 600
ASK_FOR_A_LINK: Final = (
    "guest tokens on this relay come from join links; ask the streamer for one "
    "(coplay-host invite USER), then run: coplay-guest join LINK"
)
MAX_BODY_BYTES: Final = 64 * 1024
SECURITY_SCHEME: Final = "appToken"

# ---------------------------------------------------------------- wire types


class _UserTokenCheck(msgspec.Struct):
    """UserTokenRequest as JSON Schema reads it: 600.0 is an integer too."""

    username: str
    cid: str
    expires_in: Lifetime | Annotated[float, Meta(ge=1, le=2**31 - 1)] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.expires_in, float) and not self.expires_in.is_integer():
            raise ValueError("Expected an integer - at `$.expires_in`")


class Health(msgspec.Struct):
    status: str


# ---------------------------------------------------------------- behaviour


class ApiError(Exception):
    """An answer other than 200: status, one line of text, optional headers."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    expires_in: int


class TokenService:
    """What the endpoints do, without HTTP: check app credentials, issue tokens.

    Two kinds of app credential reach :meth:`app_token`: an app's own from
    relay.toml, and a friend's from a redeemed invite (``invites``). A friend's
    app token yields user tokens only for its grant's username, scoped to its
    session, for at most ``guest_token_s`` and never past the grant; an app's
    own yields guest tokens only with ``guest_tokens = "app"``.
    """

    def __init__(
        self,
        apps: tuple[AppCredentials, ...],
        issuer: TokenIssuer,
        max_token_s: int,
        log: Any,
        *,
        invites: InviteStore | None = None,
        guest_token_s: int = GUEST_TOKEN_S,
        min_token_s: int = 60,
    ) -> None:
        self._apps = {app.client_id: app for app in apps}
        self._issuer = issuer
        self._max_token_s = max_token_s
        self._log = log
        self._invites = invites
        self._guest_token_s = guest_token_s
        self._min_token_s = min_token_s
        # compared against when the client id is unknown, so timing does not reveal which ids exist
        self._decoy = hmac.new(b"coplay", b"decoy", "sha256").hexdigest().encode()

    def app_token(self, client_id: str, client_secret: str) -> Issued:
        app = self._apps.get(client_id)
        if app is None and self._invites is not None:
            return self._friend_app_token(client_id, client_secret)
        expected = app.client_secret.reveal().encode() if app else self._decoy
        match = hmac.compare_digest(client_secret.encode(), expected)
        if app is None or not match:
            raise ApiError(401, "invalid app credentials")
        lifetime = min(APP_TOKEN_S, self._max_token_s)
        self._log.info("app_token_issued", app_client_id=client_id, expires_in=lifetime)
        return Issued(self._issuer.app_token(client_id, lifetime), lifetime)

    def user_token(self, app_token: str | None, request: UserTokenRequest) -> Issued:
        if not app_token:
            raise ApiError(401, "missing Authorization header (the app token)")
        try:
            client_id = self._issuer.verify_app(app_token)
        except InvalidToken as exc:
            raise ApiError(401, str(exc)) from None
        app = self._apps.get(client_id)
        grant = None
        if app is None and self._invites is not None:
            app, grant = self._friend_app(client_id)
        if app is None:
            raise ApiError(401, "app token for an unknown app")
        if not is_valid_name(request.username):
            raise ApiError(400, "username: 1-64 of A-Z a-z 0-9 _ -")
        device, sep, app_id = request.cid.partition("@")
        if not sep or not is_valid_name(device) or not is_valid_name(app_id):
            raise ApiError(400, "cid: expected DEVICE@APP_ID, each 1-64 of A-Z a-z 0-9 _ -")
        if app_id != app.app_id:
            raise ApiError(400, f"cid: must end with @{app.app_id} for this app")
        wanted = request.expires_in if request.expires_in is not None else self._max_token_s
        lifetime = max(self._min_token_s, min(wanted, self._max_token_s))
        role = role_for(request.username, app.hosts)
        if grant is not None:
            if request.username != grant.username:
                raise ApiError(
                    403, f"this credential is for user {grant.username!r} only, not another"
                )
            role = "guest"
            cap = min(self._guest_token_s, self._max_token_s)
            left = grant.seconds_left(self._invites.now() if self._invites else 0.0)
            lifetime = max(1, min(max(self._min_token_s, min(wanted, cap)), left))
        elif role == "guest" and app.guest_tokens != "app":
            raise ApiError(403, ASK_FOR_A_LINK)
        token = self._issuer.user_token(
            username=request.username,
            cid=request.cid,
            role=role,
            lifetime_s=lifetime,
            prefix=app.topic_prefix,
            app=app.client_id,
            session=grant.session if grant else None,
            grant=grant.id if grant else None,
        )
        self._log.info(
            "user_token_issued",
            user=request.username,
            client_id=request.cid,
            role=role,
            expires_in=lifetime,
            **({"session": grant.session, "grant": grant.id} if grant else {}),
        )
        return Issued(token, lifetime)

    # ---------------------------------------------------------------- friends' credentials

    def _friend_app_token(self, client_id: str, client_secret: str) -> Issued:
        assert self._invites is not None
        grant = self._invites.credential(client_id, client_secret)
        if grant is None or grant.app not in self._apps:
            raise ApiError(401, "invalid app credentials")
        now = self._invites.now()
        if not grant.live(now):
            raise ApiError(401, _ended(grant))
        lifetime = max(1, min(APP_TOKEN_S, self._max_token_s, grant.seconds_left(now)))
        self._log.info(
            "app_token_issued", user=grant.username, session=grant.session, grant=grant.id
        )
        return Issued(self._issuer.app_token(client_id, lifetime), lifetime)

    def _friend_app(self, client_id: str) -> tuple[AppCredentials | None, Grant | None]:
        """The app and live grant behind a friend's app token (401 once the grant ended)."""
        assert self._invites is not None
        grant = self._invites.grant_of(client_id)
        if grant is None:
            return None, None
        if not grant.live(self._invites.now()):
            raise ApiError(401, _ended(grant))
        return self._apps.get(grant.app), grant


def _ended(grant: Grant) -> str:
    why = "was revoked by the streamer" if grant.revoked_at is not None else "has expired"
    return (
        f"the invite for {grant.username!r} in session {grant.session!r} {why}; "
        "ask the streamer for a new join link"
    )


def success(issued: Issued) -> TokenEnvelope:
    return TokenEnvelope(200, "success", TokenBody(issued.token, issued.expires_in))


def fail(status: int, text: str, headers: dict[str, str] | None = None) -> Response[FailEnvelope]:
    return Response(FailEnvelope(status, "fail", text), status_code=status, headers=headers)


# ---------------------------------------------------------------- the app

ERRORS: Final = {
    400: ResponseSpec(FailEnvelope, description="malformed request", generate_examples=False),
    401: ResponseSpec(
        FailEnvelope, description="bad credentials or token", generate_examples=False
    ),
    429: ResponseSpec(
        FailEnvelope, description="rate limited; see Retry-After", generate_examples=False
    ),
}
REFUSALS: Final = {
    **ERRORS,
    403: ResponseSpec(
        FailEnvelope,
        description="not for this username (a friend's credential, or a guest without a link)",
        generate_examples=False,
    ),
}


def create_app(
    service: TokenService,
    limiter: RateLimiter,
    log: Any,
    trusted_proxies: Sequence[Network] = (),
    extra_routes: Callable[[Callable[[type[msgspec.Struct]], Any]], list[Any]] | None = None,
) -> Litestar:
    """The Litestar app for ``service``; failed requests rate-limited per client address
    and per address and app (see :mod:`relay.service.ratelimit`).

    ``extra_routes(strict)`` adds more handlers (the invite endpoints) that use the
    same strict body check; their failures count against the same rate limit.
    """

    def failed(request: Request[Any, Any, Any], exc: ApiError) -> ApiError:
        """``exc``, or 429 once this address (and app) has failed too often.

        Every refusal of every route comes through here once (the ApiError handler);
        a route that knows the app asking puts it in ``request.state.coplay_app``.
        """
        peer = request.client.host if request.client else None
        address = client_address(peer, request.headers.get("x-forwarded-for"), trusted_proxies)
        app = getattr(request.state, "coplay_app", None)
        waits = [limiter.take(key) for key in failure_keys(address, app)]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            return ApiError(429, "rate limited; retry later", {"Retry-After": str(wait)})
        return exc

    def strict(kind: type[msgspec.Struct]) -> Any:
        """Check the body with strict JSON types (Litestar converts "60" to 60)."""

        async def check(request: Request[Any, Any, Any]) -> None:
            try:
                msgspec.json.decode(await request.body(), type=kind)
            except (msgspec.ValidationError, ValueError) as exc:
                text = f"invalid request: {field_first(str(exc))}"
                raise ApiError(400, text) from None
            except msgspec.DecodeError:
                text = "invalid request: body is not valid JSON"
                raise ApiError(400, text) from None

        return check

    @post(
        APP_TOKEN_PATH,
        status_code=200,
        before_request=strict(AppTokenRequest),
        responses=ERRORS,
        summary="Exchange app credentials for an app token",
        operation_id="appToken",
    )
    async def app_token(
        request: Request[Any, Any, Any], data: JSONBody[AppTokenRequest]
    ) -> TokenEnvelope:
        request.state.coplay_app = data.appClientId  # failures also count per app
        return success(service.app_token(data.appClientId, data.appClientSecret))

    @post(
        USER_TOKEN_PATH,
        status_code=200,
        before_request=strict(_UserTokenCheck),
        responses=REFUSALS,
        security=[{SECURITY_SCHEME: []}],
        summary="Exchange an app token for a user token (the MQTT password)",
        operation_id="userToken",
    )
    async def user_token(
        request: Request[Any, Any, Any], data: JSONBody[UserTokenRequest]
    ) -> TokenEnvelope:
        return success(service.user_token(request.headers.get("authorization"), data))

    @get("/healthz", summary="Liveness", operation_id="healthz")
    async def healthz() -> Health:
        return Health("ok")

    def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[FailEnvelope]:
        exc = failed(request, exc)
        if exc.status in (401, 403):
            log.info("token_refused", status=exc.status, reason=exc.text)
        return fail(exc.status, exc.text, exc.headers)

    def on_validation(
        _: Request[Any, Any, Any], exc: ValidationException
    ) -> Response[FailEnvelope]:
        return fail(400, _validation_text(exc))

    def on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[FailEnvelope]:
        status = exc.status_code
        if status >= 500:
            log.error("api_error", status=status, error=type(exc).__name__)
        return fail(status, str(exc.detail), dict(exc.headers or {}))

    def on_crash(_: Request[Any, Any, Any], exc: Exception) -> Response[FailEnvelope]:
        log.error("api_crash", error=type(exc).__name__)
        return fail(500, "internal error")

    return Litestar(
        route_handlers=[
            app_token,
            user_token,
            healthz,
            *(extra_routes(strict) if extra_routes else []),
        ],
        exception_handlers={
            ApiError: on_api_error,
            ValidationException: on_validation,
            HTTPException: on_http,
            Exception: on_crash,
        },
        openapi_config=OpenAPIConfig(
            title="coplay relay token API",
            version=__version__,
            description="Easemob-compatible token API of the coplay relay.",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    SECURITY_SCHEME: SecurityScheme(
                        type="apiKey",
                        name="Authorization",
                        security_scheme_in="header",
                        description="the raw app token (no 'Bearer')",
                    )
                }
            ),
        ),
        request_max_body_size=MAX_BODY_BYTES,
        debug=False,
        logging_config=None,
    )


def _validation_text(exc: ValidationException) -> str:
    parts = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = item.get("key")
            message = str(item.get("message", "invalid"))
            parts.append(f"{key}: {message}" if key else message)
    detail = str(exc.detail or "invalid request")
    text = f"{detail}: {'; '.join(parts)}" if parts else detail
    return text[:300]
