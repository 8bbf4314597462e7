"""The embedded MQTT broker: amqtt 0.12 with coplay's JWT authentication and topic ACL.

amqtt's own ``contrib.jwt`` plugins do not fit: they check only the username
claim (not the client id, nor that the token is a user token), read topic
rules from flat claims rather than EMQX's ``{"pub": [...], "sub": [...]}``,
and decode the JWT again on every publish, refusing a live connection's
traffic once its token expires (our clients refresh tokens for their next
connect). So :class:`JwtAuthPlugin` verifies the token once per CONNECT and
pins its ACL to the session, and :class:`AclTopicPlugin` enforces that ACL for
publish, subscribe and delivery.

amqtt 0.12.1 bugs that would break coplay, worked around in
:class:`CoplayBroker` / :class:`CoplayProtocolHandler`:

1. A CONNECT is acted on *before* it is authenticated: a clean-session CONNECT
   deletes the existing session of that client id (its subscriptions vanish
   while it stays connected), and a second CONNECT takes the first one over,
   even when the newcomer's password is wrong. We authenticate first.
2. The Last Will is published without any topic check, so a guest could set
   a Will on another user's ``in/`` topic. We refuse such a CONNECT.
3. On every CONNECT, retained messages matching *any* client's subscription
   are sent to the newcomer, bypassing the ACL. We send retained messages
   only for the session's own subscriptions.
4. Silent clients are never dropped (Yakifo/amqtt#308), so their Last Will
   never fires. We close a connection after 1.5x its keep-alive without a
   packet, as MQTT 3.1.1 asks, which publishes the Will.
5. A message is delivered at the *subscription's* QoS, not the minimum of
   that and the publish QoS: every QoS 0 Input frame reached a QoS 1
   subscriber as QoS 1 (a PUBACK each, and stale frames redelivered after a
   reconnect). We deliver QoS 0 publishes at QoS 0. (A QoS 1 publish to a
   QoS 2 subscription still arrives as QoS 2; coplay never subscribes at 2.)
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from dataclasses import dataclass
from typing import Any, Final

import structlog
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.utils import format_client_message, gen_client_id

from relay.logs import Throttle
from relay.service.amqtt_hooks import BrokerLimitsMixin, HandlerLimits
from relay.service.claims import InvalidToken, TokenIssuer
from relay.service.config import ServerSection
from relay.service.limits import BrokerLimits
from relay.service.revocation import GRANT_ATTR, GrantCheck, disconnect_grants, pin_grant
from relay.topics import Acl, filter_covers, topic_matches

_ACL_ATTR: Final = "coplay_acl"
_ACL_CACHE_ATTR: Final = "coplay_acl_cache"
ACL_CACHE_MAX: Final = 64  # decisions remembered per session (then forgotten and relearnt)
_REFUSED_ATTR: Final = "coplay_refusal"
SESSION_EXPIRY_S: Final = 3600

# the QoS of the PUBLISH being routed by this client's message-loop task (fix 5)
_publish_qos: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "coplay_publish_qos", default=None
)


def _clip(text: object, size: int = 64) -> str | None:
    """A client-chosen value for a log line, at most ``size`` characters."""
    if text is None:
        return None
    value = str(text)
    return value if len(value) <= size else value[:size] + "..."


def session_acl(session: Any) -> Acl | None:
    """The ACL pinned to an amqtt session by :class:`JwtAuthPlugin`, if it authenticated."""
    found = getattr(session, _ACL_ATTR, None)
    return found if isinstance(found, Acl) else None


def allowed(rules: Acl, action: str, topic: str) -> bool:
    """Whether ``rules`` permit ``action`` (publish/subscribe/receive) on ``topic``."""
    if action == Action.PUBLISH:
        return any(topic_matches(f, topic) for f in rules.pub)
    if action == Action.SUBSCRIBE:
        return any(filter_covers(f, topic) for f in rules.sub)
    if action == Action.RECEIVE:
        return any(topic_matches(f, topic) for f in rules.sub)
    return False


def allowed_cached(session: Any, rules: Acl, action: str, topic: str) -> bool:
    """:func:`allowed`, remembered per session (a guest publishes to one topic all along).

    The cache belongs to the ACL it was filled for: a reconnect that pins a new
    ACL to the session starts a new one. At most ``ACL_CACHE_MAX`` entries.
    """
    held = getattr(session, _ACL_CACHE_ATTR, None)
    if held is None or held[0] is not rules or len(held[1]) >= ACL_CACHE_MAX:
        held = (rules, {})
        setattr(session, _ACL_CACHE_ATTR, held)
    decisions: dict[tuple[str, str], bool] = held[1]
    key = (action, topic)
    ok = decisions.get(key)
    if ok is None:
        ok = decisions[key] = allowed(rules, action, topic)
    return ok


class JwtAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """CONNECT succeeds only with a valid user token for this username and client id.

    The token must verify with the relay's secret, be unexpired, have ``sub``
    equal to the MQTT username and ``cid`` equal to the client id, and be a
    user token (app tokens use another key and an audience). A Will topic
    must be one the token may publish to.
    """

    @dataclass
    class Config:
        issuer: Any
        log: Any = None
        grants: Any = None  # a GrantCheck: invite tokens are refused once their grant ended

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._issuer: TokenIssuer = self.config.issuer
        self._grants: GrantCheck | None = self.config.grants
        self._log = self.config.log or structlog.get_logger("relay.broker")
        self._throttle = Throttle(5.0)

    async def authenticate(self, *, session: Any) -> bool | None:
        username = session.username
        password = session.password
        reason = None
        if not username or not password:
            reason = "no username or password"
        else:
            try:
                claims = self._issuer.verify_user(
                    password, username=username, client_id=session.client_id
                )
            except InvalidToken as exc:
                reason = str(exc)
            else:
                if (
                    claims.grant is not None
                    and self._grants is not None
                    and not self._grants.is_live(claims.grant)
                ):
                    reason = "invite revoked or expired"
                elif session.will_flag and not allowed(
                    claims.acl, Action.PUBLISH, session.will_topic or ""
                ):
                    reason = "will topic not allowed"
                    setattr(session, _REFUSED_ATTR, NOT_AUTHORIZED)
                else:
                    if session_acl(session) is None:  # amqtt asks again after our early check
                        self._log.info(
                            "mqtt_authenticated",
                            user=username,
                            client_id=session.client_id,
                            role=claims.role,
                        )
                    setattr(session, _ACL_ATTR, claims.acl)
                    pin_grant(session, claims.grant)
                    return True
        setattr(session, _ACL_ATTR, None)
        if self._throttle.allow("refused"):  # a fixed key: never text a client chose
            self._log.warning(
                "mqtt_refused",
                user=_clip(username),
                client_id=_clip(session.client_id),
                reason=_clip(reason, 128),
                remote=session.remote_address,
                suppressed=self._throttle.take_suppressed("refused"),
            )
        return False


class AclTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Publish, subscribe and delivery only where the session's token ACL allows."""

    @dataclass
    class Config:
        log: Any = None

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._log = self.config.log or structlog.get_logger("relay.broker")
        self._throttle = Throttle(5.0)

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Any = None
    ) -> bool | None:
        return self.check(session, topic, action)

    def check(self, session: Any, topic: str | None, action: Any) -> bool:
        """The ACL decision (also called directly by :class:`CoplayBroker`, without a task)."""
        rules = session_acl(session)
        if rules is None or topic is None or action is None:
            return False
        ok = allowed_cached(session, rules, action, topic)
        if not ok and action != Action.RECEIVE:
            key = str(action)  # a fixed set of keys: never text a client chose
            if self._throttle.allow(key):
                self._log.warning(
                    "mqtt_denied",
                    user=_clip(session.username),
                    action=key,
                    topic=_clip(topic, 128),
                    suppressed=self._throttle.take_suppressed(key),
                )
        return ok


class CoplayProtocolHandler(HandlerLimits, BrokerProtocolHandler):  # type: ignore[misc]
    """amqtt's broker handler, but a client silent past its keep-alive is disconnected."""

    def handle_read_timeout(self) -> None:
        task = getattr(self, "_reader_task", None)
        if task is not None and not task.done():
            structlog.get_logger("relay.broker").info(
                "mqtt_keepalive_expired",
                client_id=self.session.client_id if self.session else None,
            )
            # the reader loop ends, the broker sees an abnormal close, the Will goes out
            task.cancel()


class CoplayBroker(BrokerLimitsMixin, Broker):  # type: ignore[misc]
    """amqtt's Broker with the fixes listed in the module docstring and the bounds of
    :mod:`relay.service.limits`."""

    def __init__(self, config: dict[str, Any], limits: BrokerLimits | None = None) -> None:
        super().__init__(config)
        self.coplay_init(limits or BrokerLimits(), _pub_filters)

    async def _topic_filtering(self, session: Any, topic: str, action: Action) -> bool:
        # With our ACL plugin the only topic plugin, ask it directly: amqtt's plugin manager
        # would run it as a task of its own and gather it, on every publish and every delivery.
        plugins = getattr(self.plugins_manager, "_topic_plugins", None)
        only = plugins[0] if isinstance(plugins, list) and len(plugins) == 1 else None
        if isinstance(only, AclTopicPlugin):
            return only.check(session, topic, action)
        result: bool = await super()._topic_filtering(session, topic, action)
        return result

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Any]:
        # Mirrors Broker._initialize_client_session of amqtt 0.12.1, with authentication
        # first (fix 1) and a keep-alive the reader loop enforces (fix 4).
        where = format_client_message(address=remote_address, port=remote_port)
        try:
            handler, session = await CoplayProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except AMQTTError as exc:
            self.logger.warning(f"{where}: can't read first packet as CONNECT: {exc}")
            raise AMQTTError(exc) from exc
        except MQTTError as exc:
            self.logger.warning(f"invalid connection from {where}")
            await writer.close()
            raise MQTTError(exc) from exc
        except NoDataError as exc:
            self.logger.warning(f"no data from {where}")
            raise AMQTTError(exc) from exc

        if not await self._authenticate(session, None):
            code = getattr(session, _REFUSED_ATTR, BAD_USERNAME_PASSWORD)
            connack = ConnackPacket.build(0, code)
            try:
                await connack.to_stream(writer)
                await writer.close()
            except (OSError, asyncio.CancelledError, AMQTTError):
                pass
            raise MQTTError(f"{where}: not authorized")

        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for attr in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "will_retain",
                "keep_alive",
                "username",
                "password",
                _ACL_ATTR,
                GRANT_ATTR,
            ):
                setattr(existing, attr, getattr(session, attr, None))
            session = existing
            session.parent = 1
        else:
            session.parent = 0

        if session.keep_alive > 0:
            session.keep_alive = math.ceil(session.keep_alive * 1.5)
        return handler, session

    async def _handle_message_delivery(
        self, client_session: Any, handler: Any, wait_deliver: Any
    ) -> Any:
        message = wait_deliver.result()
        token = _publish_qos.set(getattr(message, "qos", None))
        try:
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)
        finally:
            _publish_qos.reset(token)

    async def _broadcast_message(
        self, session: Any, topic: Any, data: Any, force_qos: int | None = None
    ) -> None:
        if force_qos is None and _publish_qos.get() == 0:
            force_qos = 0  # fix 5: min(publish QoS 0, any subscription QoS) is 0
        await super()._broadcast_message(session, topic, data, force_qos)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        # fix 3: only for a filter this session holds (and so passed the ACL)
        holders = self._subscriptions.get(subscription[0], ())
        if any(held is session for held, _ in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)


def _pub_filters(session: Any) -> tuple[str, ...]:
    rules = session_acl(session)
    return tuple(rules.pub) if rules is not None else ()


def broker_config(
    server: ServerSection, issuer: TokenIssuer, log: Any = None, grants: GrantCheck | None = None
) -> dict[str, Any]:
    """The amqtt config dict for ``[server]``: listeners, TLS, and our two plugins only."""
    tls: dict[str, Any] = {}
    if server.tls_cert:
        tls = {"ssl": True, "certfile": server.tls_cert, "keyfile": server.tls_key}
    listeners: dict[str, Any] = {
        "default": {"type": "tcp", "bind": server.mqtt_listen, **tls},
    }
    if server.ws_listen:
        listeners["ws"] = {"type": "ws", "bind": server.ws_listen, **tls}
    return {
        "listeners": listeners,
        "timeout_disconnect_delay": 0,
        "session_expiry_interval": SESSION_EXPIRY_S,
        "plugins": {
            f"{__name__}.JwtAuthPlugin": {"issuer": issuer, "log": log, "grants": grants},
            f"{__name__}.AclTopicPlugin": {"log": log},
        },
    }


def create_broker(
    server: ServerSection, issuer: TokenIssuer, log: Any = None, grants: GrantCheck | None = None
) -> CoplayBroker:
    """A broker ready to ``await start()``; call it inside the running event loop."""
    return CoplayBroker(broker_config(server, issuer, log, grants), BrokerLimits.of(server))


def disconnect_revoked(broker: CoplayBroker, grants: list[int] | tuple[int, ...]) -> int:
    """Drop the connections of revoked invite ``grants`` (see :mod:`relay.service.revocation`)."""
    return disconnect_grants(broker, grants, _ACL_ATTR)
