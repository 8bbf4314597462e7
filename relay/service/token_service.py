"""What the token endpoints do, without HTTP: check app credentials, issue tokens.

:class:`TokenService` answers the two Easemob-compatible calls of DESIGN for
:mod:`relay.service.api`; a refusal is an :class:`ApiError` (status and one
line of text) that the API turns into the error envelope. Lifetimes: an app
token lives :data:`APP_TOKEN_S` (at most ``max_token_s``); a user token what
the client asks, within ``[server] min_token_s`` .. ``max_token_s``; a friend's
(an invite's) at most ``guest_token_s`` and never past the grant.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from relay.service.claims import InvalidToken, TokenIssuer, role_for
from relay.service.config import AppCredentials
from relay.service.invite_store import Grant, InviteStore
from relay.tokenwire import UserTokenRequest
from relay.topics import is_valid_name

T = TypeVar("T")

APP_TOKEN_S: Final = 3600
GUEST_TOKEN_S: Final = 600
ASK_FOR_A_LINK: Final = (
    "guest tokens on this relay come from join links; ask the streamer for one "
    "(coplay-host invite USER), then run: coplay-guest join LINK"
)


class ApiError(Exception):
    """An answer other than 200: status, one line of text, optional headers."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or {}


def verified(token: str | None, what: str, verify: Callable[[str], T]) -> T:
    """``verify(token)``; 401 naming ``what`` when the header is missing or the token is bad."""
    if not token:
        raise ApiError(401, f"missing Authorization header ({what})")
    try:
        return verify(token)
    except InvalidToken as exc:  # its text is a short reason, never the token
        raise ApiError(401, str(exc)) from exc


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
        client_id = verified(app_token, "the app token", self._issuer.verify_app)
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
        self._log.info("app_token_issued", **grant.log_fields())
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
