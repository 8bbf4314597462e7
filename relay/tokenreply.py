"""What an answer of the token API means: a token, a refusal, a failure worth a retry, or an error.

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

from collections.abc import Callable

import httpx
import msgspec

from relay.errors import TokenApiError
from relay.retry import Retryable, retry_after
from relay.tokenwire import FailEnvelope, TokenBody, TokenEnvelope

_SUCCESS = msgspec.json.Decoder(TokenEnvelope)
_FAILURE = msgspec.json.Decoder(FailEnvelope)


class Refused(Exception):
    """401/403 from the token API; the caller decides what it means (app or user refused)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


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
    return Retryable(f"cannot reach the token API at {api_url} ({describe(exc)})", "token API unreachable")


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
