"""The token API on the wire: paths, request and response Structs, shared by both ends.

The relay's token API (:mod:`relay.service.api`) decodes requests and encodes
answers with these; the client (:mod:`relay.tokens`) encodes requests and
decodes answers with the same classes. Unknown fields are ignored on decode, so
a hosted provider that adds fields still works.

:class:`TokenBody` is as lenient as the client must be: the relay always sends
``expires_in`` as whole seconds, but a hosted provider may leave it out or send
an absolute time, a float or a number in a string (``relay.tokencache.lifetime``
reads them all), so the one declaration admits those too.
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


# float, not int | float: a JSON integer decodes into a float field, and the schema's oneOf
# stays unambiguous (an integer is also a JSON Schema "number"). msgspec encodes the value the
# server puts there, so the relay's int goes out as an integer.
ExpiresIn = Annotated[
    float | str | None,
    Meta(
        description=(
            "Seconds the token lives (the relay always sends an integer); other providers "
            "may send an epoch time in seconds or milliseconds, or leave it out"
        )
    ),
]


class TokenBody(msgspec.Struct):
    access_token: Annotated[str, Meta(min_length=1)]
    expires_in: ExpiresIn = None  # missing: the lifetime the client asked for


class TokenEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: TokenBody


class FailEnvelope(msgspec.Struct):
    code: int
    msg: str
    body: str
