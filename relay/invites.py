"""Invites on the wire: the request and response types of the invite endpoints, and join links.

The relay (:mod:`relay.service.invites`) and its clients (``coplay-host
invite|revoke|invites``, ``coplay-guest join``) both use these Structs, so
neither end hand-parses what the other declares::

    POST /openapi/rm/invite           host token   CreateInvite  -> InviteCreated
    POST /openapi/rm/invite/redeem    (none)       RedeemInvite  -> Redeemed
    POST /openapi/rm/invite/revoke    host token   RevokeInvite  -> Revoked
    POST /openapi/rm/invite/list      host token   ListInvites   -> InviteList

Every answer uses the token API's envelope ``{"code", "msg", "body"}``. A join
link is ``{public_url}/join#{CODE}``: the code sits in the fragment, so a
browser never sends it in a request line. :class:`InviteClient` speaks the
four calls over httpx; a 401 or 403 becomes an :class:`~relay.errors.AuthError`
(exit 77) whose text is the relay's one sentence, never the code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
import msgspec
from msgspec import Meta

from relay import __version__
from relay.errors import AuthError, TokenApiError, UsageError
from relay.topics import NAME_PATTERN, PREFIX_PATTERN

INVITE_PATH: Final = "/openapi/rm/invite"
REDEEM_PATH: Final = "/openapi/rm/invite/redeem"
REVOKE_PATH: Final = "/openapi/rm/invite/revoke"
LIST_PATH: Final = "/openapi/rm/invite/list"
JOIN_PATH: Final = "/join"

CODE_PATTERN: Final = r"[A-Za-z0-9_-]{16,128}"
MAX_INVITE_TTL_S: Final = 30 * 86400  # an invite (and what it grants) lives at most 30 days
MAX_INVITE_USES: Final = 100  # redeems per invite
_CODE = re.compile(CODE_PATTERN)

Name = Annotated[str, Meta(pattern=f"^{NAME_PATTERN}$")]
Prefix = Annotated[str, Meta(pattern=f"^{PREFIX_PATTERN}$")]
Code = Annotated[str, Meta(pattern=f"^{CODE_PATTERN}$")]
Seat = Annotated[int, Meta(ge=1, le=16)]
Ttl = Annotated[int, Meta(ge=60, le=MAX_INVITE_TTL_S)]
Uses = Annotated[int, Meta(ge=1, le=MAX_INVITE_USES)]

# ---------------------------------------------------------------- requests


class CreateInvite(msgspec.Struct):
    """An invite for ``username`` in ``session``, redeemable ``uses`` times within ``ttl_s``."""

    session: Name
    username: Name
    seat: Seat | None = None
    ttl_s: Ttl = 86400
    uses: Uses = 1


class RedeemInvite(msgspec.Struct):
    """The code from a join link's fragment."""

    invite: Code


class RevokeInvite(msgspec.Struct):
    """End every grant of ``username`` in ``session``."""

    session: Name
    username: Name


class ListInvites(msgspec.Struct):
    """The live grants of one session, or of every session when ``session`` is null."""

    session: Name | None = None


# ---------------------------------------------------------------- answers


class InviteCreated(msgspec.Struct):
    invite: str  # the code
    url: str  # the join link
    expires_in: int


class Grant(msgspec.Struct, kw_only=True):
    """Where and who an invited friend is (the part of a redeem a guest keeps as it came)."""

    app_id: str
    username: str
    session: str
    seat: int | None
    topic_prefix: str
    api_url: str
    broker_url: str
    ws_url: str  # "" when the relay has no WebSocket listener


class Redeemed(Grant, kw_only=True):
    """What a friend needs to play: their own app credential, and where and who they are."""

    appClientId: str  # wire names of the token API
    appClientSecret: str
    expires_in: int  # seconds left in the grant


class Revoked(msgspec.Struct):
    revoked: int  # grants ended


class InviteInfo(msgspec.Struct):
    """One live grant as ``coplay-host invites`` shows it: never a code, secret or token."""

    username: str
    session: str
    seat: int | None
    uses_left: int
    redeemed: int
    expires_in: int


class InviteList(msgspec.Struct):
    invites: list[InviteInfo]


class InviteCreatedEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: InviteCreated


class RedeemedEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: Redeemed


class RevokedEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: Revoked


class InviteListEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: InviteList


# ---------------------------------------------------------------- links


def join_link(public_url: str, code: str) -> str:
    """``{public_url}/join#{code}``."""
    return f"{public_url.rstrip('/')}{JOIN_PATH}#{code}"


def parse_link(link: str) -> tuple[str, str]:
    """(the relay's API URL, the code) of a join link; UsageError for anything else.

    The message never repeats the link (it holds the code).
    """
    text = link.strip()
    base, sep, code = text.partition("#")
    url = urlsplit(base)
    if (
        not sep
        or url.scheme not in ("http", "https")
        or not url.hostname
        or not url.path.rstrip("/").endswith(JOIN_PATH)
        or not _CODE.fullmatch(code)
    ):
        raise UsageError(
            "that is not a join link: expected http(s)://HOST[:PORT]/join#CODE "
            "as the streamer's coplay-host invite printed it"
        )
    api_url = base.rstrip("/")[: -len(JOIN_PATH)]
    return api_url, code


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?")


def parse_duration(text: str) -> int:
    """``"24h"``, ``"90m"``, ``"1d12h"``, ``"600"`` (seconds) -> seconds; UsageError if not one
    of those or outside 1 minute .. 30 days."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(f"--ttl: expected a duration like 24h, 90m, 7d or 3600, got {text!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if not 60 <= total <= MAX_INVITE_TTL_S:
        raise UsageError(f"--ttl: must be between 1m and 30d, got {text!r}")
    return total


def describe_duration(seconds: int) -> str:
    """3600 -> "1h", 90061 -> "1d 1h 1m": for listings."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts[:2]) or "<1m"


# ---------------------------------------------------------------- the client

T = TypeVar("T")


class InviteClient:
    """The four invite calls against one relay (``transport`` lets tests intercept HTTP)."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        verify: Any = True,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self._api_url,
            timeout=timeout_s,
            transport=transport,
            verify=verify,
            headers={"User-Agent": f"coplay/{__version__}"},
        )

    def create(self, host_token: str, request: CreateInvite) -> InviteCreated:
        return self._call(INVITE_PATH, request, InviteCreatedEnvelope, host_token).body

    def redeem(self, code: str) -> Redeemed:
        return self._call(REDEEM_PATH, RedeemInvite(code), RedeemedEnvelope, None).body

    def revoke(self, host_token: str, request: RevokeInvite) -> Revoked:
        return self._call(REVOKE_PATH, request, RevokedEnvelope, host_token).body

    def list(self, host_token: str, request: ListInvites) -> InviteList:
        return self._call(LIST_PATH, request, InviteListEnvelope, host_token).body

    def close(self) -> None:
        self._http.close()

    def _call(self, path: str, request: msgspec.Struct, kind: type[T], token: str | None) -> T:
        headers = {"Authorization": token} if token else {}
        try:
            response = self._http.post(
                path,
                content=msgspec.json.encode(request),
                headers={**headers, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TokenApiError(
                f"cannot reach the relay at {self._api_url} ({type(exc).__name__})"
            ) from exc
        status = response.status_code
        if status == 200:
            try:
                return msgspec.json.decode(response.content, type=kind)
            except msgspec.DecodeError as exc:
                raise TokenApiError(
                    f"the relay at {self._api_url} gave an answer coplay does not understand"
                ) from exc
        text = _fail_text(response)
        if status in (401, 403):
            raise AuthError(text)
        raise TokenApiError(f"the relay answered {status}: {text}", status=status)


def _fail_text(response: httpx.Response) -> str:
    try:
        body = response.json().get("body")
    except (ValueError, AttributeError):
        body = None
    text = body if isinstance(body, str) and body else response.reason_phrase or "error"
    return text.strip()[:300]
