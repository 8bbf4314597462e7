"""Credentials for the broker: tokens from an Easemob-compatible token API, or a fixed password.

:class:`TokenClient` speaks the two-step flow of DESIGN over httpx:

1. ``POST {api_url}/openapi/rm/app/token`` with the app client id and secret
   -> an app token;
2. ``POST {api_url}/openapi/rm/user/token`` with ``Authorization: <app token>``
   (raw, no "Bearer") -> the user token, the MQTT password for ``cid``.

Requests and answers are the Structs of :mod:`relay.tokenwire`, which the
server uses too; :mod:`relay.tokenreply` reads an answer (a missing
``expires_in`` means the requested lifetime, extra fields are ignored, a
failure envelope becomes a typed error). Tokens are cached and refreshed at
80 % of their lifetime (:mod:`relay.tokencache`). Network errors, 5xx and 429
are retried with capped exponential backoff and jitter, honouring
``Retry-After`` (:mod:`relay.retry`); a 401/403 on the app credentials is an
:class:`~relay.errors.AuthError` at once (exit 77), because retrying bad
credentials only locks the account. Every token is handed to the
:class:`~relay.logs.Redactor` as it arrives and never appears in an exception.

:class:`StaticCredentials` is the ``api_url = ""`` case: the username and
password from the config, for a plain Mosquitto.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol, Unpack

import structlog

from relay.config import LinkSettings
from relay.errors import AuthError, ConfigError, TokenApiError
from relay.logs import Redactor
from relay.secrets import Secret
from relay.singleflight import SingleFlight
from relay.tokenapi import Refused, TokenApi, TokenApiOptions
from relay.tokencache import Token, TokenCache, lifetime
from relay.tokenwire import (
    APP_TOKEN_PATH,
    USER_TOKEN_PATH,
    AppTokenRequest,
    TokenBody,
    UserTokenRequest,
)

__all__ = [  # the token API paths are re-exported for callers that import them from here
    "APP_TOKEN_PATH",
    "USER_TOKEN_PATH",
    "CredentialSource",
    "Credentials",
    "StaticCredentials",
    "TokenClient",
    "credential_source",
    "retry_text",
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What MQTT CONNECT needs."""

    client_id: str
    username: str
    password: Secret | None  # None: CONNECT with the username only (a broker without passwords)
    expires_at: float | None = None  # time.monotonic() when the password stops working


class CredentialSource(Protocol):
    """Where the link gets its CONNECT credentials."""

    def get(self) -> Credentials:
        """Cached credentials, fetched or refreshed (before expiry) as needed.

        Blocks while retrying network errors, 5xx and 429 with capped exponential
        backoff and jitter. Raises AuthError at once when the app credentials are
        refused (401): retrying those is pointless.
        """
        ...

    def refresh(self) -> Credentials:
        """Fetch new credentials now (the broker refused the current password)."""
        ...

    def close(self) -> None: ...


class _QuickTryFailed(TokenApiError):
    """The one try of a refresh ahead of expiry failed; the cached token still works."""


class TokenClient:
    """App and user tokens from an Easemob-compatible token API, cached and refreshed.

    One fetch is in flight at a time (:class:`~relay.singleflight.SingleFlight`):
    a thread that needs a token while another fetches waits for that fetch's
    result, holding no lock, and asks the API nothing itself. The ``api``
    options (:class:`~relay.tokenapi.TokenApiOptions`: clock, wall, sleep, rng,
    transport, backoff) let tests run the retry and expiry logic without waiting
    and answer HTTP with an ``httpx.MockTransport``.
    """

    def __init__(
        self,
        settings: LinkSettings,
        redactor: Redactor | None = None,
        *,
        retry_budget_s: float = 60.0,
        refresh_fraction: float = 0.8,
        **api: Unpack[TokenApiOptions],
    ) -> None:
        if not settings.api_url:
            raise ConfigError("the token client needs api_url")
        if not settings.app_client_secret:
            raise ConfigError("the token client needs app_client_secret")
        self._settings = settings
        self._redactor = redactor
        self._retry_budget = retry_budget_s
        self._refresh_fraction = refresh_fraction
        self._cache = TokenCache()
        self._flight: SingleFlight[Token] = SingleFlight()
        self._log = structlog.get_logger("relay.tokens").bind(api=settings.api_url)
        if redactor is not None:
            redactor.add(settings.app_client_secret)
        self._api = TokenApi(settings.api_url, redactor, **api)
        self._clock = self._api.clock
        self._wall = self._api.wall

    # ------------------------------------------------------------------ CredentialSource

    def get(self) -> Credentials:
        """Cached credentials; fetched when missing, refreshed once 80 % of the lifetime passed.

        A refresh while the cached token still works is tried once: if the API is
        down, the cached token is returned instead of blocking.
        """
        user = self._cache.get("user")
        now = self._clock()
        if user is not None and user.fresh(now):
            return self._credentials(user)
        if user is not None and user.usable(now):
            try:
                return self._credentials(self._flight.run(self._fetch_quick))
            except TokenApiError as exc:
                self._log.warning("token_refresh_postponed", reason=str(exc))
                return self._credentials(user)
        return self._credentials(self._fetch_patiently())

    def refresh(self) -> Credentials:
        """A new user token now (the broker refused the current one)."""
        self._cache.put("user", None)
        return self._credentials(self._fetch_patiently())

    def close(self) -> None:
        """Stop: a retry that is waiting gives up, and the HTTP connections close."""
        self._api.close()

    def retry_state(self) -> tuple[str, float] | None:
        """While a request waits to be retried: (what failed, seconds until the next try)."""
        return self._api.waiting()

    # ------------------------------------------------------------------ the two steps

    def _credentials(self, token: Token) -> Credentials:
        return Credentials(
            client_id=self._settings.client_id,
            username=self._settings.username,
            password=token.value,
            expires_at=token.expires_at,
        )

    def _fetch_quick(self) -> Token:
        try:
            return self._fetch_user(budget=0.0)
        except TokenApiError as exc:
            raise _QuickTryFailed(str(exc), status=exc.status) from exc

    def _fetch_patiently(self) -> Token:
        patient = functools.partial(self._fetch_user, budget=self._retry_budget)
        try:
            return self._flight.run(patient)
        except _QuickTryFailed:  # we joined someone's one try, which failed: now with retries
            return self._flight.run(patient)

    def _fetch_user(self, budget: float) -> Token:
        deadline = self._clock() + budget
        app, fresh = self._app_token(deadline)
        try:
            body = self._post_user(app, deadline)
        except Refused as refused:
            if fresh:
                raise self._user_refused(refused) from refused
            # The cached app token may have expired early: drop it and try once more.
            self._log.info("app_token_dropped", status=refused.status)
            self._cache.put("app", None)
            app, _ = self._app_token(deadline)
            try:
                body = self._post_user(app, deadline)
            except Refused as again:
                raise self._user_refused(again) from again
        token = self._token(body)
        self._cache.put("user", token)
        self._log.info("token_fetched", kind="user", expires_in=round(token.lifetime))
        return token

    def _post_user(self, app: Token, deadline: float) -> TokenBody:
        request = UserTokenRequest(
            username=self._settings.username,
            cid=self._settings.client_id,
            expires_in=self._settings.token_lifetime_s,
        )
        headers = {"Authorization": app.value.reveal()}
        return self._api.post(USER_TOKEN_PATH, request, deadline, headers)

    def _user_refused(self, refused: Refused) -> AuthError:
        return AuthError(
            f"the token API refused a token for user {self._settings.username!r} "
            f"({refused.status}: {refused.text})"
        )

    def _app_token(self, deadline: float) -> tuple[Token, bool]:
        """The app token and whether it was fetched just now."""
        app = self._cache.get("app")
        if app is not None and app.fresh(self._clock()):
            return app, False
        secret = self._settings.app_client_secret
        assert secret is not None  # checked in __init__
        request = AppTokenRequest(self._settings.app_client_id, secret.reveal())
        try:
            body = self._api.post(APP_TOKEN_PATH, request, deadline)
        except Refused as refused:
            raise AuthError(
                f"the token API refused the app credentials of client "
                f"{self._settings.app_client_id!r} ({refused.status}: {refused.text}); "
                "check app_client_id and app_client_secret"
            ) from refused
        app = self._token(body)
        self._cache.put("app", app)
        self._log.info("token_fetched", kind="app", expires_in=round(app.lifetime))
        return app, True

    def _token(self, body: TokenBody) -> Token:
        if self._redactor is not None:
            self._redactor.add(body.access_token)
        requested = self._settings.token_lifetime_s
        seconds = lifetime(body.expires_in, requested, self._wall())
        return Token.issued(
            Secret(body.access_token), seconds, self._clock(), self._refresh_fraction
        )


class StaticCredentials:
    """The username and password from the config (``api_url = ""``: a plain Mosquitto).

    With no password at all the link connects with the username only, for a
    broker that does not authenticate (``allow_anonymous true``); one warning says so.
    """

    def __init__(self, settings: LinkSettings, redactor: Redactor | None = None) -> None:
        self._credentials = Credentials(settings.client_id, settings.username, settings.password)
        if settings.password is None:
            structlog.get_logger("relay.tokens").warning(
                "broker_does_not_authenticate",
                username=settings.username,
                hint='api_url = "" and no password: connecting with the username only',
            )
        elif redactor is not None:
            redactor.add(settings.password)

    def get(self) -> Credentials:
        return self._credentials

    def refresh(self) -> Credentials:
        """Nothing new to fetch: the same password (the link gives up after a few refusals)."""
        return self._credentials

    def close(self) -> None:
        pass


def credential_source(settings: LinkSettings, redactor: Redactor | None = None) -> CredentialSource:
    """A TokenClient when ``settings.api_url`` is set, else StaticCredentials."""
    if settings.api_url:
        return TokenClient(settings, redactor)
    return StaticCredentials(settings, redactor)


def retry_text(source: CredentialSource) -> str:
    """``token API unreachable (retrying in 4 s)`` while ``source`` waits to retry, else ""."""
    state = source.retry_state() if isinstance(source, TokenClient) else None
    if state is None:
        return ""
    what, left = state
    return f"{what} (retrying in {math.ceil(left)} s)"
