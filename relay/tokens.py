"""Credentials for the broker: tokens from an Easemob-compatible token API, or a fixed password.

:class:`TokenClient` speaks the two-step flow of DESIGN over httpx:

1. ``POST {api_url}/openapi/rm/app/token`` with the app client id and secret
   -> an app token;
2. ``POST {api_url}/openapi/rm/user/token`` with ``Authorization: <app token>``
   (raw, no "Bearer") -> the user token, the MQTT password for ``cid``.

Both answers use the envelope ``{"code", "msg", "body": {"access_token",
"expires_in"}}``; a missing ``expires_in`` means the requested lifetime, extra
fields are ignored, and a failure envelope (``"msg": "fail"``, text ``body``)
becomes a typed error. Tokens are cached and refreshed at 80 % of their
lifetime. Network errors, 5xx and 429 are retried with capped exponential
backoff and jitter, honouring ``Retry-After``; a 401/403 on the app credentials
is an :class:`~relay.errors.AuthError` at once (exit 77), because retrying bad
credentials only locks the account. Every token is handed to the
:class:`~relay.logs.Redactor` as it arrives and never appears in an exception.

:class:`StaticCredentials` is the ``api_url = ""`` case: the username and
password from the config, for a plain Mosquitto.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from relay import __version__
from relay.config import LinkSettings
from relay.errors import AuthError, ConfigError, TokenApiError
from relay.logs import Redactor
from relay.secrets import Secret
from relay.tokenwire import APP_TOKEN_PATH, USER_TOKEN_PATH


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


@dataclass(frozen=True, slots=True)
class _Token:
    value: Secret
    lifetime: float
    expires_at: float  # clock() time
    refresh_at: float  # clock() time


class _Refused(Exception):
    """401/403 from the token API; the caller decides what it means."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class TokenClient:
    """App and user tokens from an Easemob-compatible token API, cached and refreshed.

    ``clock``, ``wall``, ``sleep`` and ``rng`` are injectable so tests can run
    the retry and expiry logic without waiting; ``transport`` lets them answer
    HTTP with an ``httpx.MockTransport``.
    """

    def __init__(
        self,
        settings: LinkSettings,
        redactor: Redactor | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = random.random,
        timeout_s: float = 10.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        retry_budget_s: float = 60.0,
        refresh_fraction: float = 0.8,
    ) -> None:
        if not settings.api_url:
            raise ConfigError("the token client needs api_url")
        if not settings.app_client_secret:
            raise ConfigError("the token client needs app_client_secret")
        self._settings = settings
        self._redactor = redactor
        self._clock = clock
        self._wall = wall
        self._sleep = sleep or self._interruptible_sleep
        self._rng = rng
        self._backoff_base = backoff_base_s
        self._backoff_cap = backoff_cap_s
        self._retry_budget = retry_budget_s
        self._refresh_fraction = refresh_fraction
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._app: _Token | None = None
        self._user: _Token | None = None
        self._not_before = 0.0  # clock() time before which the API asked us not to call
        self._retry: tuple[str, float] | None = None  # (what failed, clock() of the next try)
        self._log = structlog.get_logger("relay.tokens").bind(api=settings.api_url)
        if redactor is not None:
            redactor.add(settings.app_client_secret)
        self._http = httpx.Client(
            base_url=settings.api_url,
            timeout=timeout_s,
            transport=transport,
            headers={"User-Agent": f"coplay/{__version__}"},
        )

    # ------------------------------------------------------------------ CredentialSource

    def get(self) -> Credentials:
        """Cached credentials; fetched when missing, refreshed once 80 % of the lifetime passed.

        A refresh while the cached token still works is tried once: if the API is
        down, the cached token is returned instead of blocking.
        """
        with self._lock:
            user = self._user
            now = self._clock()
            if user is not None and now < user.refresh_at:
                return self._credentials(user)
            if user is not None and now < user.expires_at:
                try:
                    return self._credentials(self._fetch_user(budget=0.0))
                except TokenApiError as exc:
                    self._log.warning("token_refresh_postponed", reason=str(exc))
                    return self._credentials(user)
            return self._credentials(self._fetch_user(budget=self._retry_budget))

    def refresh(self) -> Credentials:
        """A new user token now (the broker refused the current one)."""
        with self._lock:
            self._user = None
            return self._credentials(self._fetch_user(budget=self._retry_budget))

    def close(self) -> None:
        """Stop: a retry that is waiting gives up, and the HTTP connections close."""
        self._closed.set()
        self._http.close()

    # ------------------------------------------------------------------ the two steps

    def _credentials(self, token: _Token) -> Credentials:
        return Credentials(
            client_id=self._settings.client_id,
            username=self._settings.username,
            password=token.value,
            expires_at=token.expires_at,
        )

    def _fetch_user(self, budget: float) -> _Token:
        deadline = self._clock() + budget
        app, fresh = self._app_token(deadline)
        try:
            body = self._post_user(app, deadline)
        except _Refused as refused:
            if fresh:
                raise self._user_refused(refused) from None
            # The cached app token may have expired early: drop it and try once more.
            self._log.info("app_token_dropped", status=refused.status)
            self._app = None
            app, _ = self._app_token(deadline)
            try:
                body = self._post_user(app, deadline)
            except _Refused as again:
                raise self._user_refused(again) from None
        token = self._token(body, requested=self._settings.token_lifetime_s)
        self._user = token
        self._log.info("token_fetched", kind="user", expires_in=round(token.lifetime))
        return token

    def _post_user(self, app: _Token, deadline: float) -> Mapping[str, Any]:
        return self._post(
            USER_TOKEN_PATH,
            {
                "username": self._settings.username,
                "expires_in": self._settings.token_lifetime_s,
                "cid": self._settings.client_id,
            },
            deadline,
            headers={"Authorization": app.value.reveal()},
        )

    def _user_refused(self, refused: _Refused) -> AuthError:
        return AuthError(
            f"the token API refused a token for user {self._settings.username!r} "
            f"({refused.status}: {refused.text})"
        )

    def _app_token(self, deadline: float) -> tuple[_Token, bool]:
        """The app token and whether it was fetched just now."""
        app = self._app
        if app is not None and self._clock() < app.refresh_at:
            return app, False
        secret = self._settings.app_client_secret
        assert secret is not None  # checked in __init__
        try:
            body = self._post(
                APP_TOKEN_PATH,
                {"appClientId": self._settings.app_client_id, "appClientSecret": secret.reveal()},
                deadline,
            )
        except _Refused as refused:
            raise AuthError(
                f"the token API refused the app credentials of client "
                f"{self._settings.app_client_id!r} ({refused.status}: {refused.text}); "
                "check app_client_id and app_client_secret"
            ) from None
        app = self._token(body, requested=self._settings.token_lifetime_s)
        self._app = app
        self._log.info("token_fetched", kind="app", expires_in=round(app.lifetime))
        return app, True

    def _token(self, body: Mapping[str, Any], requested: float) -> _Token:
        value = body["access_token"]
        if self._redactor is not None:
            self._redactor.add(value)
        lifetime = self._lifetime(body.get("expires_in"), requested)
        now = self._clock()
        return _Token(
            value=Secret(value),
            lifetime=lifetime,
            expires_at=now + lifetime,
            refresh_at=now + lifetime * self._refresh_fraction,
        )

    def _lifetime(self, raw: object, requested: float) -> float:
        """Seconds a token lives: ``expires_in`` in seconds, or an absolute time some APIs send."""
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw <= 0:
            return float(requested)
        if raw > 1e12:  # epoch milliseconds
            return max(self._minimum_lifetime(), raw / 1000 - self._wall())
        if raw > 1e9:  # epoch seconds
            return max(self._minimum_lifetime(), raw - self._wall())
        return float(raw)

    @staticmethod
    def _minimum_lifetime() -> float:
        return 30.0

    # ------------------------------------------------------------------ HTTP with retries

    def retry_state(self) -> tuple[str, float] | None:
        """While a request waits to be retried: (what failed, seconds until the next try)."""
        retry = self._retry
        if retry is None:
            return None
        return retry[0], max(0.0, retry[1] - self._clock())

    def _post(
        self,
        path: str,
        payload: Mapping[str, Any],
        deadline: float,
        headers: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]:
        """POST; the envelope's body. Retries what is worth retrying until ``deadline``."""
        try:
            return self._post_retrying(path, payload, deadline, headers)
        finally:
            self._retry = None

    def _post_retrying(
        self,
        path: str,
        payload: Mapping[str, Any],
        deadline: float,
        headers: Mapping[str, str] | None,
    ) -> Mapping[str, Any]:
        attempt = 0
        while True:
            if self._closed.is_set():
                raise TokenApiError("the token client was closed")
            wait = self._not_before - self._clock()
            if wait > 0:
                self._wait(wait, deadline, "the token API asked to wait (Retry-After)", attempt)
            attempt += 1
            retry_after: float | None = None
            try:
                response = self._http.post(path, json=payload, headers=headers)
            except httpx.TransportError as exc:
                reason = (
                    f"cannot reach the token API at {self._settings.api_url} ({_describe(exc)})"
                )
                what = "token API unreachable"
            except httpx.HTTPError as exc:
                raise TokenApiError(f"token API request failed: {_describe(exc)}") from None
            else:
                status, body, text = self._read(response)
                if status < 300 and body is not None:
                    return body
                if status in (401, 403):
                    raise _Refused(status, text)
                if status == 429 or status >= 500:
                    reason = f"the token API answered {status}: {text}"
                    what = "token API busy" if status == 429 else f"token API error {status}"
                    retry_after = _retry_after(response.headers.get("Retry-After"), self._wall())
                else:
                    raise TokenApiError(
                        f"the token API rejected the request ({status}: {text})", status=status
                    )
            delay = self._backoff(attempt)
            if retry_after is not None:
                delay = max(delay, retry_after)
                self._not_before = self._clock() + retry_after
            self._wait(delay, deadline, reason, attempt, what)

    def _wait(
        self, delay: float, deadline: float, reason: str, attempt: int, what: str = ""
    ) -> None:
        if self._clock() + delay > deadline:
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            raise TokenApiError(f"{reason}{tries}")
        self._log.warning(
            "token_api_retry", attempt=attempt, delay_s=round(delay, 3), reason=reason
        )
        self._retry = (what or "token API asked to wait", self._clock() + delay)
        self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter: a random point in the upper half."""
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0 ** min(attempt - 1, 30))
        return ceiling / 2 + self._rng() * ceiling / 2

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._closed.wait(seconds):
            raise TokenApiError("the token client was closed")

    def _read(self, response: httpx.Response) -> tuple[int, Mapping[str, Any] | None, str]:
        """(effective status, token body or None, error text) from an Easemob envelope."""
        status = response.status_code
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            if status < 300:
                return 502, None, "the answer is not a JSON envelope"
            return status, None, self._scrub(response.reason_phrase or "error")
        body = envelope.get("body")
        code = envelope.get("code")
        failed = envelope.get("msg") == "fail" or (isinstance(code, int) and code >= 300)
        if status < 300 and failed:
            status = code if isinstance(code, int) and code >= 300 else 400
        if status < 300:
            token = body.get("access_token") if isinstance(body, dict) else None
            if isinstance(token, str) and token:
                return status, body, ""
            return 502, None, "the answer has no access_token"
        text = body if isinstance(body, str) else envelope.get("msg") or response.reason_phrase
        return status, None, self._scrub(str(text or "error"))

    def _scrub(self, text: str) -> str:
        text = text.strip()[:200]
        if self._redactor is not None:
            text = self._redactor.scrub(text)
        return text


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), capped at 10 minutes."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), 600.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - now), 600.0)


def _describe(exc: Exception) -> str:
    """An httpx error in a few words (its text names the URL at most, never headers)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


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
