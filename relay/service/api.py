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

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Final, Protocol

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import JSONBody
from msgspec import Meta

from relay import __version__
from relay.configfile import field_first
from relay.service.ratelimit import Network, RateLimiter, client_address, failure_keys
from relay.service.token_service import ApiError, Issued, TokenService
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


class Route(Protocol):
    """Declares a strict-bodied ``POST`` handler of the token API (see :func:`create_app`)."""

    def __call__(
        self,
        path: str,
        kind: type[msgspec.Struct],
        *,
        summary: str,
        operation_id: str,
        responses: Mapping[int, ResponseSpec] = ...,
        security: list[dict[str, list[str]]] | None = None,
    ) -> Callable[[Callable[..., Any]], HTTPRouteHandler]: ...


def create_app(
    service: TokenService,
    limiter: RateLimiter,
    log: Any,
    trusted_proxies: Sequence[Network] = (),
    extra_routes: Callable[[Route], list[Any]] | None = None,
) -> Litestar:
    """The Litestar app for ``service``; failed requests rate-limited per client address
    and per address and app (see :mod:`relay.service.ratelimit`).

    ``extra_routes(route)`` adds more handlers (the invite endpoints) declared with
    the same :class:`Route` (strict body check); their failures count against the
    same rate limit.
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
                raise ApiError(400, f"invalid request: {field_first(str(exc))}") from exc
            except msgspec.DecodeError as exc:
                raise ApiError(400, "invalid request: body is not valid JSON") from exc

        return check

    def route(
        path: str,
        kind: type[msgspec.Struct],
        *,
        summary: str,
        operation_id: str,
        responses: Mapping[int, ResponseSpec] = ERRORS,
        security: list[dict[str, list[str]]] | None = None,
    ) -> Callable[[Callable[..., Any]], HTTPRouteHandler]:
        """``POST path`` answering 200, its body checked strictly as ``kind`` first."""
        return post(
            path,
            status_code=200,
            before_request=strict(kind),
            responses=dict(responses),
            security=security,
            summary=summary,
            operation_id=operation_id,
        )

    @route(
        APP_TOKEN_PATH,
        AppTokenRequest,
        summary="Exchange app credentials for an app token",
        operation_id="appToken",
    )
    async def app_token(
        request: Request[Any, Any, Any], data: JSONBody[AppTokenRequest]
    ) -> TokenEnvelope:
        request.state.coplay_app = data.appClientId  # failures also count per app
        return success(service.app_token(data.appClientId, data.appClientSecret))

    @route(
        USER_TOKEN_PATH,
        _UserTokenCheck,
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
            *(extra_routes(route) if extra_routes else []),
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
