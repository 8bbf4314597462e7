"""``coplay-relay nats-callout``: the NATS cluster's auth callout, admitting MQTT clients by token.

A NATS server with ``authorization { auth_callout { ... } }`` sends every
login it cannot decide itself to ``$SYS.REQ.USER.AUTH`` as an authorization
request JWT, signed by the server's nkey, and waits (its ``auth_timeout``)
for an authorization response JWT signed by the configured issuer account.
This service answers them, as a queue group so several relays share the load
and any one of them is enough:

1. the request must verify (signature of a server ``N...`` key, audience
   ``nats-authorization-request``) or it is dropped unanswered (the server
   times the login out);
2. only MQTT clients are admitted (``client_info.type == "mqtt"``): a plain
   NATS or WebSocket-NATS login with a valid token is refused, since it would
   bypass the MQTT topic mapping;
3. the MQTT password must be a coplay user token that the relay's own
   :meth:`~relay.service.claims.TokenIssuer.verify_user` accepts for that MQTT
   username and client id (signature, ``exp``, ``sub``, ``cid``);
4. an optional ``admit`` check may refuse it still: ``nats-callout`` refuses
   a token of an invite grant that was revoked or has expired, reading the
   relay's own invite store (``[server] state_db``, so the callout runs beside
   the relay; a grant the store does not know is refused too);
5. the answer is a NATS user JWT placed in ``[nats] account`` whose publish and
   subscribe permissions are the token's ``acl`` claim mapped by
   :func:`nats_subjects` and which expires with the token (NATS then closes
   the connection; the client's link reconnects with a fresh token).

Anything else is answered with an error response naming the reason (the
server logs it; it never holds the token). Requests larger than
:data:`~relay.service.nats_jwt.MAX_JWT_BYTES` are dropped, at most
:data:`MAX_PENDING_REQUESTS` wait at once (NATS drops the excess as a slow
consumer; those logins time out), and refusals are logged at most once per
:data:`REFUSAL_LOG_INTERVAL_S` per reason (with the count suppressed since),
the username cut to :data:`MAX_LOGGED_NAME` characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Final, Protocol

import structlog

from relay.clock import WallClock
from relay.errors import ConfigError
from relay.logs import Redactor, Throttle
from relay.service.claims import InvalidToken, TokenIssuer, UserClaims
from relay.service.config import RelayServiceConfig
from relay.service.nats_jwt import SERVER, NatsJwtError, NKey, callout_key, decode, encode
from relay.service.nats_jwt import issuer_key as derive_issuer_key
from relay.topics import Acl

AUTH_SUBJECT: Final = "$SYS.REQ.USER.AUTH"
QUEUE_GROUP: Final = "coplay-callout"
REQUEST_AUDIENCE: Final = "nats-authorization-request"
MQTT_CLIENT: Final = "mqtt"
MAX_PENDING_REQUESTS: Final = 1024
REFUSAL_LOG_INTERVAL_S: Final = 5.0  # at most one refusal line per reason per interval
MAX_LOGGED_NAME: Final = 64  # a stranger's username is cut to this in the log
RECONNECT_WAIT_S: Final = 0.5
DENY_ALL: Final = {"deny": [">"]}

# (verified claims) -> "" to admit, or the reason to refuse (revoked invite grants)
Admit = Callable[[UserClaims], str]


def nats_subject(topic_filter: str) -> list[str]:
    """An MQTT topic filter as NATS subjects: ``/`` -> ``.``, ``+`` -> ``*``, ``#`` -> ``>``.

    MQTT's ``a/#`` also matches ``a`` itself, NATS's ``a.>`` does not, so a
    trailing ``#`` adds its parent level too. A bare ``#`` is ``>``.
    """
    levels = ["*" if level == "+" else level for level in topic_filter.split("/")]
    if levels[-1] != "#":
        return [".".join(levels)]
    if len(levels) == 1:
        return [">"]
    return [".".join([*levels[:-1], ">"]), ".".join(levels[:-1])]


def nats_subjects(acl: Acl) -> tuple[list[str], list[str]]:
    """(publish, subscribe) NATS subjects for an ``acl`` claim, in order and without repeats."""

    def mapped(filters: Sequence[str]) -> list[str]:
        out: list[str] = []
        for topic_filter in filters:
            out.extend(s for s in nats_subject(topic_filter) if s not in out)
        return out

    return mapped(acl.pub), mapped(acl.sub)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _permission(subjects: list[str]) -> dict[str, list[str]]:
    # An empty allow list would mean "everything" to NATS: say "nothing" instead.
    return {"allow": subjects} if subjects else DENY_ALL


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one request got: ``response`` to send (None: drop it), who, and why not."""

    response: str | None
    user: str = ""
    client_type: str = ""
    refused: str = ""  # "" when admitted


@dataclass(frozen=True, eq=False, repr=False)  # no repr: ``issuer`` is a signing key
class CalloutAuthorizer:
    """Turns authorization request JWTs into signed response JWTs (no I/O; time from ``clock``)."""

    tokens: TokenIssuer
    issuer: NKey
    account: str
    _: KW_ONLY
    admit: Admit | None = None
    clock: WallClock

    def answer(self, request: str) -> Verdict:
        try:
            claims = decode(request, SERVER)
        except NatsJwtError as exc:
            return Verdict(None, refused=f"bad request: {exc}")
        nats = claims.get("nats")
        if claims.get("aud") != REQUEST_AUDIENCE or not isinstance(nats, dict):
            return Verdict(None, refused="bad request: not an authorization request")
        user_nkey = nats.get("user_nkey")
        server = nats.get("server_id")
        server_id = server.get("id") if isinstance(server, dict) else None
        if not isinstance(user_nkey, str) or not isinstance(server_id, str):
            return Verdict(None, refused="bad request: no user nkey or server id")
        info = _mapping(nats.get("client_info"))
        opts = _mapping(nats.get("connect_opts"))
        client_type = str(info.get("type", ""))
        username = str(opts.get("user", ""))
        password = opts.get("pass")
        client_id = str(info.get("mqtt_id", ""))

        def refuse(reason: str) -> Verdict:
            body = {"error": reason}
            return Verdict(
                self._response(user_nkey, server_id, body), username, client_type, reason
            )

        if client_type != MQTT_CLIENT:
            return refuse("only MQTT clients are admitted")
        if not username or not isinstance(password, str) or not password:
            return refuse("no username or password")
        try:
            verified = self.tokens.verify_user(password, username=username, client_id=client_id)
        except InvalidToken as exc:
            return refuse(str(exc))
        if self.admit is not None and (why := self.admit(verified)):
            return refuse(why)
        pub, sub = nats_subjects(verified.acl)
        user = encode(
            {
                "sub": user_nkey,
                "name": username,
                "aud": self.account,
                "exp": verified.exp,
                "nats": {
                    "pub": _permission(pub),
                    "sub": _permission(sub),
                    "subs": -1,
                    "data": -1,
                    "payload": -1,
                    "allowed_connection_types": ["MQTT"],
                    "type": "user",
                    "version": 2,
                },
            },
            self.issuer,
            self.clock.time(),
        )
        return Verdict(self._response(user_nkey, server_id, {"jwt": user}), username, client_type)

    def _response(self, user_nkey: str, server_id: str, body: dict[str, str]) -> str:
        claims = {
            "sub": user_nkey,
            "aud": server_id,
            "nats": {**body, "type": "authorization_response", "version": 2},
        }
        return encode(claims, self.issuer, self.clock.time())


REVOKED: Final = "invite revoked or expired"


class GrantCheck(Protocol):
    """Whether an invite grant still stands (the relay's invite store answers)."""

    def is_live(self, grant_id: int) -> bool: ...


def grant_admit(grants: GrantCheck) -> Admit:
    """Refuse tokens of invite grants that are no longer live; other tokens pass."""

    def admit(claims: UserClaims) -> str:
        if claims.grant is not None and not grants.is_live(claims.grant):
            return REVOKED
        return ""

    return admit


# ---------------------------------------------------------------- the service


def authorizer_for(
    config: RelayServiceConfig, clock: WallClock, admit: Admit | None = None
) -> CalloutAuthorizer:
    """The authorizer of ``relay.toml``: its JWT secret, its ``[nats] account``."""
    if config.jwt_secret is None:
        raise ConfigError(
            f"{config.path}: $.server.jwt_secret: the NATS callout needs a fixed jwt_secret "
            "(ephemeral_secret = true would make every token unverifiable on the cluster)"
        )
    tokens = TokenIssuer(config.jwt_secret, clock=clock, prefix=config.server.topic_prefix)
    return CalloutAuthorizer(
        tokens, derive_issuer_key(config.jwt_secret), config.nats.account, admit=admit, clock=clock
    )


async def serve_callout(
    config: RelayServiceConfig, redactor: Redactor, clock: WallClock, admit: Admit | None = None
) -> int:
    """Answer the cluster's authorization requests until SIGTERM/SIGINT; returns 0."""
    import nats  # noqa: PLC0415 (the nats extra)
    from nats.aio.msg import Msg  # noqa: PLC0415

    log = structlog.get_logger("relay.nats_callout")
    if admit is None:
        from relay.service.invite_store import open_store  # noqa: PLC0415

        admit = grant_admit(open_store(config, clock))
    authorizer = authorizer_for(config, clock, admit)
    assert config.jwt_secret is not None  # authorizer_for checked it
    login = callout_key(config.jwt_secret)
    redactor.add(login.seed_secret())
    throttle = Throttle(REFUSAL_LOG_INTERVAL_S)
    counts = {"admitted": 0, "refused": 0, "dropped": 0}

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def handle(msg: Msg) -> None:
        if not msg.reply:
            return
        verdict = authorizer.answer(msg.data.decode(errors="replace"))
        if verdict.response is None:
            counts["dropped"] += 1
            if throttle.allow(f"drop:{verdict.refused}"):
                log.warning("nats_request_dropped", reason=verdict.refused)
            return
        await msg.respond(verdict.response.encode())
        if not verdict.refused:
            counts["admitted"] += 1
            log.debug("nats_login_admitted", user=verdict.user)
            return
        counts["refused"] += 1
        key = f"refused:{verdict.refused}"  # a small fixed set: bounded lines and memory
        if throttle.allow(key):
            log.warning(
                "nats_login_refused",
                user=verdict.user[:MAX_LOGGED_NAME],
                client_type=verdict.client_type[:MAX_LOGGED_NAME],
                reason=verdict.refused,
                suppressed=throttle.take_suppressed(key),
            )

    async def on_error(exc: Exception) -> None:
        if throttle.allow(f"error:{type(exc).__name__}"):
            log.warning("nats_error", error=type(exc).__name__, detail=str(exc))

    async def on_disconnected() -> None:
        log.warning("nats_disconnected")

    async def on_reconnected() -> None:
        log.info("nats_reconnected")

    servers = list(config.nats.servers)
    clients: list[Any] = []

    async def attach(url: str) -> None:
        """Connect to one node (retrying until stopped) and join the queue group there."""
        while not stop.is_set():
            try:
                client = await nats.connect(
                    servers=[url],
                    nkeys_seed_str=login.seed_secret().reveal(),
                    name="coplay-nats-callout",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT_S,
                    connect_timeout=2,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                )
            except Exception as exc:  # that node is not up yet: keep trying until stopped
                if throttle.allow(f"connect:{url}"):
                    log.warning("nats_unreachable", server=url, error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_WAIT_S * 2)
                continue
            clients.append(client)
            await client.subscribe(
                AUTH_SUBJECT, queue=QUEUE_GROUP, cb=handle, pending_msgs_limit=MAX_PENDING_REQUESTS
            )
            await client.flush()
            return

    # One connection per node: a node's requests are answered on that node (the queue group
    # prefers local members), so a reply never depends on a route to another node.
    attaching = asyncio.gather(*(attach(url) for url in servers))
    try:
        await attaching
        if not stop.is_set():
            log.info(
                "nats_callout_ready",
                servers=servers,
                account=config.nats.account,
                issuer=authorizer_issuer(config),
            )
            await stop.wait()
    finally:
        log.info("nats_callout_stopping", **counts)
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.drain(), timeout=3)
    return 0


def authorizer_issuer(config: RelayServiceConfig) -> str:
    """The public key the cluster's ``auth_callout { issuer }`` must name."""
    if config.jwt_secret is None:
        return ""
    return derive_issuer_key(config.jwt_secret).public
