"""The token API over HTTP: one request Struct out, one token body back, retried as DESIGN says.

:class:`TokenApi` POSTs with httpx and runs each request through a
:class:`~relay.retry.Retrier`: network errors, 5xx and 429 are retried with
capped exponential backoff and jitter, honouring ``Retry-After``, until the
caller's deadline. What an answer means (a token, a refusal, a failure worth a
retry, or an error) is :func:`read_reply`'s to say.

Answers are decoded with the Structs the server declares (:mod:`relay.tokenwire`):
a :class:`~relay.tokenwire.TokenEnvelope` on success, a
:class:`~relay.tokenwire.FailEnvelope` (``"msg": "fail"``, text ``body``) on
failure. Some gateways answer HTTP 200 with a failure envelope: its ``code``
then counts. A success without a usable token counts as a 502 (retried, like
any answer a proxy in between may have mangled).

Error texts come from the server, so they pass through ``scrub`` (the
:class:`~relay.logs.Redactor`) before they reach an exception: a server that
echoes a token cannot put it in one.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypedDict, Unpack

import httpx
import msgspec
import structlog

from relay import __version__
from relay.errors import TokenApiError
from relay.logs import Redactor
from relay.retry import Backoff, Retrier, Retryable, retry_after
from relay.tokenwire import (
    AppTokenRequest,
    FailEnvelope,
    TokenBody,
    TokenEnvelope,
    UserTokenRequest,
)

_SUCCESS = msgspec.json.Decoder(TokenEnvelope)
_FAILURE = msgspec.json.Decoder(FailEnvelope)


class Refused(Exception):
    """401/403 from the token API; the caller decides what it means (app or user refused)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class TokenApiOptions(TypedDict, total=False):
    """How a :class:`TokenApi` talks and waits; tests pass fakes (a MockTransport, a fake clock)."""

    transport: httpx.BaseTransport | None  # None: real HTTP
    clock: Callable[[], float]  # monotonic seconds (default time.monotonic)
    wall: Callable[[], float]  # wall seconds, for HTTP dates and epoch lifetimes (time.time)
    sleep: Callable[[float], None] | None  # None: a sleep close() interrupts
    rng: Callable[[], float]  # jitter source in [0, 1) (random.random)
    timeout_s: float  # per HTTP request (10)
    backoff_base_s: float  # first backoff step (0.5)
    backoff_cap_s: float  # longest backoff step (30)


class TokenApi:
    """POSTs to one token API with retries; ``close()`` ends a wait between retries at once."""

    def __init__(
        self, api_url: str, redactor: Redactor | None = None, **options: Unpack[TokenApiOptions]
    ) -> None:
        self._api_url = api_url
        self._redactor = redactor
        self.clock = options.get("clock", time.monotonic)
        self.wall = options.get("wall", time.time)
        self._closed = threading.Event()
        backoff = Backoff(
            options.get("backoff_base_s", 0.5),
            options.get("backoff_cap_s", 30.0),
            options.get("rng", random.random),
        )
        self._retrier = Retrier(
            backoff,
            clock=self.clock,
            sleep=options.get("sleep") or self._interruptible_sleep,
            give_up=TokenApiError,
            log=structlog.get_logger("relay.tokens").bind(api=api_url),
            event="token_api_retry",
            server="token API",
        )
        self._http = httpx.Client(
            base_url=api_url,
            timeout=options.get("timeout_s", 10.0),
            transport=options.get("transport"),
            headers={"User-Agent": f"coplay/{__version__}", "Content-Type": "application/json"},
        )

    def post(
        self,
        path: str,
        request: AppTokenRequest | UserTokenRequest,
        deadline: float,
        headers: Mapping[str, str] | None = None,
    ) -> TokenBody:
        """POST ``request``; the answer's token body. Retries what is worth it until ``deadline``.

        Raises :class:`Refused` (401/403), or TokenApiError (any other failure).
        """
        content = msgspec.json.encode(request)

        def attempt() -> TokenBody:
            if self._closed.is_set():
                raise TokenApiError("the token client was closed")
            try:
                response = self._http.post(path, content=content, headers=headers)
            except httpx.TransportError as exc:
                raise unreachable(self._api_url, exc) from exc
            except httpx.HTTPError as exc:
                raise TokenApiError(f"token API request failed: {describe(exc)}") from exc
            return read_reply(response, self._scrub, self.wall())

        return self._retrier.run(attempt, deadline)

    def waiting(self) -> tuple[str, float] | None:
        """While a request waits to be retried: (what failed, seconds until the next try)."""
        return self._retrier.waiting()

    def close(self) -> None:
        self._closed.set()
        self._http.close()

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._closed.wait(seconds):
            raise TokenApiError("the token client was closed")

    def _scrub(self, text: str) -> str:
        text = text.strip()[:200]
        if self._redactor is not None:
            text = self._redactor.scrub(text)
        return text


def read_reply(response: httpx.Response, scrub: Callable[[str], str], wall_now: float) -> TokenBody:
    """The token body of ``response``; else raises Refused, Retryable or TokenApiError."""
    status, body, text = _classify(response, scrub)
    if body is not None:
        return body
    if status in (401, 403):
        raise Refused(status, text)
    if status == 429 or status >= 500:
        raise Retryable(
            f"the token API answered {status}: {text}",
            "token API busy" if status == 429 else f"token API error {status}",
            retry_after(response.headers.get("Retry-After"), wall_now),
        )
    raise TokenApiError(f"the token API rejected the request ({status}: {text})", status=status)


def unreachable(api_url: str, exc: httpx.TransportError) -> Retryable:
    """A request that got no answer (connect, read or write failed): worth a retry."""
    return Retryable(
        f"cannot reach the token API at {api_url} ({describe(exc)})", "token API unreachable"
    )


def describe(exc: Exception) -> str:
    """An httpx error in a few words (its text names the URL at most, never headers)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _classify(
    response: httpx.Response, scrub: Callable[[str], str]
) -> tuple[int, TokenBody | None, str]:
    """(effective status, the token body or None, error text)."""
    status = response.status_code
    malformed: msgspec.DecodeError | None = None  # why a 2xx answer is not a token envelope
    if status < 300:
        try:
            success = _SUCCESS.decode(response.content)
        except msgspec.DecodeError as exc:
            malformed = exc  # maybe a failure envelope with HTTP 200: see below
        else:
            if success.msg != "fail" and success.code < 300:
                return status, success.body, ""
            return (success.code if success.code >= 300 else 400), None, scrub(success.msg)
    try:
        failure = _FAILURE.decode(response.content)
    except msgspec.DecodeError:
        if status < 300:
            return 502, None, _malformed(malformed)
        return status, None, scrub(response.reason_phrase or "error")
    if status < 300:
        if failure.msg != "fail" and failure.code < 300:
            return 502, None, _malformed(malformed)
        status = failure.code if failure.code >= 300 else 400
    return status, None, scrub(failure.body)


def _malformed(exc: msgspec.DecodeError | None) -> str:
    # msgspec's validation text names the field and the expected type, never a value.
    if isinstance(exc, msgspec.ValidationError):
        return f"the answer is not a token envelope ({exc})"
    return "the answer is not a JSON envelope"
