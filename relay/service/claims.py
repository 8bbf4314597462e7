"""The relay's tokens: HS256 JWTs that the embedded broker and an EMQX cluster both verify.

A **user token** is the MQTT password. Its claims are the contract of DESIGN,
so EMQX's JWT authenticator can check it natively::

    {"sub": username, "cid": "device@app_id", "role": "host" | "guest",
     "iat": issued, "exp": expires, "acl": {"pub": [...], "sub": [...]}}

Tokens the relay mints for an app also name it (``"app"``: its client id);
a guest token of an invite adds ``"session"`` (the one session its ``acl``
reaches) and ``"grant"`` (the invite grant, so a broker can refuse it once
revoked). Other verifiers ignore those extra claims.

An **app token** only authorises the ``user/token`` call. It is signed with a
key derived from the JWT secret (not the secret itself) and carries
``aud``/``typ`` claims a user token lacks, so it never verifies as an MQTT
password: not here (wrong key, audience present) and not on EMQX (wrong key).

Verification failures raise :class:`InvalidToken` with a short reason meant
for logs and error bodies; the token itself never appears in it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final, Required, TypedDict, Unpack, cast

import jwt

from relay.clock import WallClock
from relay.secrets import Secret
from relay.topics import Acl, Role, acl, is_valid_name

ALGORITHM: Final = "HS256"
APP_AUDIENCE: Final = "coplay-relay-api"
APP_TYPE: Final = "app"
USER_CLAIMS: Final = ("sub", "cid", "role", "iat", "exp", "acl")
_APP_KEY_LABEL: Final = b"coplay app token key v1"


class InvalidToken(Exception):
    """A token failed verification; ``str(exc)`` is a short reason without the token."""


@dataclass(frozen=True, slots=True)
class UserClaims:
    """The verified claims of a user token."""

    sub: str
    cid: str
    role: Role
    iat: int
    exp: int
    acl: Acl
    app: str | None = None  # the app's client id
    session: str | None = None  # invite guest tokens: the one session they reach
    grant: int | None = None  # invite guest tokens: the grant they come from


def role_for(username: str, hosts: frozenset[str]) -> Role:
    """``host`` for usernames an app lists in ``hosts``, else ``guest``."""
    return "host" if username in hosts else "guest"


class UserTokenFields(TypedDict, total=False):
    """What a user token says: who, which client, which role, for how long, and where."""

    username: Required[str]
    cid: Required[str]
    role: Required[Role]
    lifetime_s: Required[int]
    prefix: str | None  # default: the issuer's prefix
    app: str | None  # the app's client id
    session: str | None  # invite guest tokens: the one session they reach
    grant: int | None  # invite guest tokens: the grant they come from


class TokenIssuer:
    """Mints and verifies user and app tokens with one secret and one topic prefix."""

    def __init__(self, secret: Secret, *, clock: WallClock, prefix: str = "coplay") -> None:
        raw = secret.reveal().encode()
        self._user_key = raw
        self._app_key = hmac.new(raw, _APP_KEY_LABEL, hashlib.sha256).digest()
        self._prefix = prefix
        self._clock = clock

    @property
    def prefix(self) -> str:
        return self._prefix

    def now(self) -> int:
        return int(self._clock.time())

    # ---------------------------------------------------------------- user tokens

    def user_claims(self, **fields: Unpack[UserTokenFields]) -> dict[str, Any]:
        """The claims of a user token; ``session`` narrows a guest's ``acl`` to that session."""
        username = fields["username"]
        if not is_valid_name(username):
            raise ValueError(f"invalid username {username!r}")
        now = self.now()
        role, session = fields["role"], fields.get("session")
        rules = acl(role, username, fields.get("prefix") or self._prefix, session or "+")
        claims: dict[str, Any] = {
            "sub": username,
            "cid": fields["cid"],
            "role": role,
            "iat": now,
            "exp": now + fields["lifetime_s"],
            "acl": rules.as_claim(),
        }
        for extra in ("app", "session", "grant"):
            if fields.get(extra) is not None:
                claims[extra] = fields.get(extra)
        return claims

    def user_token(self, **fields: Unpack[UserTokenFields]) -> str:
        """A signed user token valid for ``lifetime_s`` seconds from now."""
        return self.sign_user_claims(self.user_claims(**fields))

    def sign_user_claims(self, claims: dict[str, Any]) -> str:
        """Sign arbitrary claims with the user-token key (tests mint expired tokens with it)."""
        return jwt.encode(claims, self._user_key, algorithm=ALGORITHM)

    def verify_user(
        self, token: str, *, username: str | None = None, client_id: str | None = None
    ) -> UserClaims:
        """The claims of a valid user token, checked against the MQTT username and client id."""
        try:
            claims = jwt.decode(
                token,
                self._user_key,
                algorithms=[ALGORITHM],
                options={"require": list(USER_CLAIMS), "verify_exp": False, "verify_iat": False},
            )
        # from None: PyJWT's messages may quote parts of the token, which is the password
        except jwt.InvalidAudienceError:
            raise InvalidToken("not a user token") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"invalid token: {type(exc).__name__}") from None
        if claims.get("typ") == APP_TYPE:
            raise InvalidToken("not a user token")
        if not isinstance(claims["exp"], int) or claims["exp"] <= self.now():
            raise InvalidToken("token expired")
        if username is not None and claims["sub"] != username:
            raise InvalidToken("username does not match the token")
        if client_id is not None and claims["cid"] != client_id:
            raise InvalidToken("client id does not match the token")
        return _user_claims(claims)

    # ---------------------------------------------------------------- app tokens

    def app_token(self, client_id: str, lifetime_s: int) -> str:
        now = self.now()
        claims = {
            "sub": client_id,
            "typ": APP_TYPE,
            "aud": APP_AUDIENCE,
            "iat": now,
            "exp": now + lifetime_s,
        }
        return jwt.encode(claims, self._app_key, algorithm=ALGORITHM)

    def verify_app(self, token: str) -> str:
        """The app ``client_id`` a valid app token was issued to."""
        try:
            claims = jwt.decode(
                token,
                self._app_key,
                algorithms=[ALGORITHM],
                audience=APP_AUDIENCE,
                options={
                    "require": ["sub", "typ", "aud", "exp"],
                    "verify_exp": False,  # checked below against our clock
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            # from None: PyJWT's messages may quote parts of the token
            raise InvalidToken(f"invalid app token: {type(exc).__name__}") from None
        if claims["typ"] != APP_TYPE:
            raise InvalidToken("not an app token")
        if not isinstance(claims["exp"], int) or claims["exp"] <= self.now():
            raise InvalidToken("app token expired")
        return cast(str, claims["sub"])


def _user_claims(claims: dict[str, Any]) -> UserClaims:
    rules = claims["acl"]
    role = claims["role"]
    if (
        not isinstance(rules, dict)
        or not isinstance(rules.get("pub", []), list)
        or not isinstance(rules.get("sub", []), list)
        or role not in ("host", "guest")
        or not isinstance(claims["cid"], str)
        or not isinstance(claims["iat"], int)
        or not isinstance(claims.get("app", ""), str)
        or not isinstance(claims.get("session", ""), str)
        or not isinstance(claims.get("grant", 0), int)
    ):
        raise InvalidToken("malformed claims")
    pub = tuple(str(t) for t in rules.get("pub", []))
    sub = tuple(str(t) for t in rules.get("sub", []))
    return UserClaims(
        sub=claims["sub"],
        cid=claims["cid"],
        role=role,
        iat=claims["iat"],
        exp=claims["exp"],
        acl=Acl(pub=pub, sub=sub),
        app=claims.get("app"),
        session=claims.get("session"),
        grant=claims.get("grant"),
    )
