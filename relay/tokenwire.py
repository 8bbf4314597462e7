"""The token API on the wire: paths, request and response Structs, shared by both ends.

The relay's token API (:mod:`relay.service.api`) decodes requests and encodes
answers with these; the client (:mod:`relay.tokens`) encodes requests and
decodes answers with the same classes. Unknown fields are ignored on decode, so
a hosted provider that adds fields still works.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta

from relay.topics import NAME_PATTERN

APP_TOKEN_PATH: Final = "/openapi/rm/app/token"  # noqa: S105 (a URL path)
USER_TOKEN_PATH: Final = "/openapi/rm/user/token"  # noqa: S105 (a URL path)


class AppTokenRequest(msgspec.Struct):
    """App credentials from ``[[apps]]`` of relay.toml."""

    appClientId: Annotated[str, Meta(min_length=1, max_length=128)]  # wire names
    appClientSecret: Annotated[str, Meta(min_length=1, max_length=1024)]


Lifetime = Annotated[int, Meta(ge=1, le=2**31 - 1)]


class UserTokenRequest(msgspec.Struct):
    """Who wants a broker token, for which MQTT client id, for how long (seconds)."""

    username: Annotated[str, Meta(pattern=f"^{NAME_PATTERN}$")]
    cid: Annotated[str, Meta(pattern=f"^{NAME_PATTERN}@{NAME_PATTERN}$")]
    expires_in: Lifetime | None = None


class TokenBody(msgspec.Struct):
    access_token: str
    expires_in: int


class TokenEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: TokenBody


class FailEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: str
