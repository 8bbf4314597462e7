"""The MQTT link both host and guest use: connect with fresh credentials, stay connected.

One :class:`Link` wraps one paho-mqtt 2.x client (``CallbackAPIVersion.VERSION2``)
running its own network thread (``connect_async`` + ``loop_start``):

- ``mqtt://``, ``mqtts://``, ``ws://`` and ``wss://`` broker URLs (websocket path
  from the URL, default ``/mqtt``); TLS verifies the broker unless ``tls_verify``
  is off; MQTT 3.1.1 by default, 5 on request.
- Several broker URLs (a cluster's nodes): the first connect uses the first
  one, and every reconnect attempt after a lost connection or a failed attempt
  moves on to the next, round the list, so losing a node costs one reconnect.
- TCP_NODELAY on every socket it opens: paho leaves Nagle on, which holds small
  input frames back by tens of milliseconds.
- Credentials come from a :class:`~relay.tokens.CredentialSource` just before each
  (re)connect, on the network thread while no connection exists, so a slow token
  fetch never stalls publishing. When the broker refuses the password, the next
  attempt asks the source for fresh credentials; after ``max_auth_retries``
  refusals in a row the link gives up (state REFUSED, ``failure`` an AuthError).
- A publish on a plain TCP connection is written on the publishing thread
  (:class:`~relay.mqttclient.DirectWriteClient`), without a wake-up of paho's
  network thread.
- Subscriptions are restored after every connect, then ``on_connect`` runs, then
  the state becomes CONNECTED. ``subscribe_qos`` caps their QoS (0 on a NATS
  cluster, where a QoS 1 subscription is a replicated JetStream consumer).
- ``publish`` never queues: while not connected it returns False at once (a stale
  input frame delivered late is worse than none), and QoS 1 messages still
  unacknowledged when a connection drops are not resent on the next one.

States: STARTING (until the first connect) -> CONNECTED <-> RECONNECTING; REFUSED
and STOPPED are final.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from relay.config import BROKER_SCHEMES, LinkSettings
from relay.errors import AuthError, ConfigError, CoplayError
from relay.linkstatus import LinkState, LinkStatus, Message, MessageHandler
from relay.logs import Throttle
from relay.mqttclient import DirectWriteClient
from relay.tokens import Credentials, CredentialSource

# CONNACK reason codes meaning "these credentials are wrong" (MQTT 5 values; paho
# maps the MQTT 3.1.1 return codes 4 and 5 onto the same ones).
AUTH_REFUSED_CODES = frozenset({0x86, 0x87})  # bad user name or password, not authorized


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker URL points, and how to talk to it."""

    host: str
    port: int
    transport: str  # "tcp" | "websockets"
    tls: bool
    path: str  # websocket path

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in BROKER_SCHEMES or not parts.hostname:
            raise ConfigError(
                f"broker_url must be mqtt://, mqtts://, ws:// or wss:// with a host, got {url!r}"
            )
        try:
            port = parts.port or BROKER_SCHEMES[scheme]
        except ValueError as exc:
            raise ConfigError(f"broker_url has a bad port: {url!r}") from exc
        websocket = scheme in ("ws", "wss")
        path = parts.path or "/mqtt"
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(
            host=parts.hostname,
            port=port,
            transport="websockets" if websocket else "tcp",
            tls=scheme in ("mqtts", "wss"),
            path=path if websocket else "",
        )


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails (paho would leave the socket to the GC)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(ca_file: str, verify: bool) -> ssl.SSLContext:
    """A client TLS context: system CAs (or ``ca_file``); hostname checked unless not ``verify``."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ca_file {ca_file}: cannot load CA certificates ({exc})") from None
    context.sslsocket_class = _ClosingSSLSocket
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def set_nodelay(sock: Any) -> None:
    """Turn Nagle off on a paho socket (plain, TLS, or paho's websocket wrapper)."""
    if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return
    fileno = getattr(sock, "fileno", None)
    if fileno is None:
        return
    # Socket options belong to the socket, not the descriptor: set it through a duplicate.
    with socket.socket(fileno=os.dup(fileno())) as dup:
        dup.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def tcp_socket(sock: Any) -> socket.socket | None:
    """The TCP socket under a paho socket (itself, or inside paho's websocket wrapper)."""
    if isinstance(sock, socket.socket):
        return sock
    inner = getattr(sock, "_socket", None)
    return inner if isinstance(inner, socket.socket) else None


class _CredentialsUnavailable(OSError):
    """Raised inside paho's reconnect so it counts as a failed attempt and backs off."""


class LinkStopped(CoplayError):
    """The link was stopped while it waited for something."""


class Link:
    """One MQTT connection that reconnects by itself and restores its subscriptions."""

    def __init__(
        self,
        settings: LinkSettings,
        credentials: CredentialSource,
        *,
        on_message: MessageHandler,
        subscriptions: Sequence[tuple[str, int]] = (),
        will: Message | None = None,
        on_connect: Callable[[], None] | None = None,  # after subscriptions are restored
        on_status: Callable[[LinkStatus], None] | None = None,
        max_auth_retries: int = 3,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._handler = on_message
        self._subscriptions = [(t, min(q, settings.subscribe_qos)) for t, q in subscriptions]
        self._on_connect = on_connect
        self._on_status = on_status
        self._max_auth_retries = max_auth_retries
        self._log = structlog.get_logger("relay.link").bind(broker=settings.broker_url)
        self._throttle = Throttle(10.0)

        self._cond = threading.Condition()
        self._status = LinkStatus(LinkState.STARTING)
        self._failure: CoplayError | None = None
        self._online = False  # CONNACK accepted and not lost since: publish may go out
        self._ever_connected = False
        self._started = False
        self._stopping = threading.Event()
        self._attempts = 0
        self._auth_refusals = 0
        self._refresh_next = False
        self._fetch_failed = False
        self._pending_suback: int | None = None

        self._addresses = [
            BrokerAddress.parse(url) for url in (settings.broker_urls or (settings.broker_url,))
        ]
        self._next_address = 0
        address = self._addresses[0]
        self._address = address
        v5 = settings.mqtt_version == "5"
        client = DirectWriteClient(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=None if v5 else True,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            transport="websockets" if address.transport == "websockets" else "tcp",
            reconnect_on_failure=True,
        )
        if address.transport == "websockets":
            client.ws_set_options(path=address.path)
        if address.tls:
            client.tls_set_context(tls_context(settings.ca_file, settings.tls_verify))
            if not settings.tls_verify:
                client.tls_insecure_set(True)
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        client.connect_timeout = connect_timeout_s
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]
        client.on_pre_connect = self._pre_connect
        client.on_socket_open = self._socket_open
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_subscribe = self._subscribed
        client.on_message = self._message
        self._client = client

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Connect in the background (connect_async + loop_start); returns at once."""
        with self._cond:
            if self._started:
                return
            self._started = True
        kwargs: dict[str, Any] = {}
        if self._settings.mqtt_version == "5":
            kwargs["clean_start"] = True
        self._client.connect_async(
            self._address.host,
            self._address.port,
            keepalive=self._settings.keepalive_s,
            **kwargs,
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected (True), or refused/stopped or ``timeout`` passed (False)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._status.state is LinkState.CONNECTED or self._status.state.final,
                timeout,
            )
            return self._status.state is LinkState.CONNECTED

    def wait_state(self, states: Sequence[LinkState], timeout: float) -> LinkStatus:
        """Wait until the state is one of ``states`` (or ``timeout``); the status then."""
        with self._cond:
            self._cond.wait_for(lambda: self._status.state in states, timeout)
            return self._status

    @property
    def status(self) -> LinkStatus:
        return self._status

    @property
    def failure(self) -> CoplayError | None:
        """Why the link gave up for good (AuthError -> exit 77), else None."""
        return self._failure

    @property
    def connected(self) -> bool:
        return self._online

    def wait_ended(self, timeout: float) -> bool:
        """True once the network loop has ended (after :meth:`stop`, or after giving up)."""
        thread = self._client._thread  # paho's loop_start thread; None once the loop ended
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return self._client._thread is None or not self._client._thread.is_alive()

    def socket(self) -> socket.socket | None:
        """The TCP socket of the current connection (for diagnostics and tests), if any."""
        return tcp_socket(self._client.socket())

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Send from any thread. False (and nothing queued) while not connected."""
        if not self._online:
            return False
        return (
            self._client.publish(topic, payload, qos, retain).rc == MQTTErrorCode.MQTT_ERR_SUCCESS
        )

    def stop(self, final: Sequence[Message] = (), timeout: float = 2.0) -> None:
        """Publish ``final`` (waiting for QoS 1 acks up to ``timeout``), then disconnect cleanly."""
        if self._stopping.is_set():
            return
        deadline = time.monotonic() + timeout
        pending = []
        if self._online:
            for message in final:
                info = self._client.publish(
                    message.topic, message.payload, message.qos, message.retain
                )
                if message.qos and info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    pending.append(info)
        for info in pending:
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        unacked = sum(1 for info in pending if not info.is_published())
        if unacked:
            self._log.warning("final_messages_unacked", count=unacked)
        self._stopping.set()
        self._online = False
        self._client.disconnect()  # a clean DISCONNECT: the broker drops our Last Will
        if self._started:
            self._client.loop_stop()
        self._set_status(LinkState.STOPPED, "stopped")

    # ------------------------------------------------------------------ paho callbacks

    def _pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        """Before each connect attempt (network thread, no connection open): credentials."""
        if self._stopping.is_set():
            client.disconnect()
            raise _CredentialsUnavailable("stopping")
        refresh, self._refresh_next = self._refresh_next, False
        self._fetch_failed = False
        with self._cond:
            self._attempts += 1
        self._rotate(client)
        try:
            creds = self._fetch(refresh)
        except AuthError as exc:
            self._give_up(exc)
            client.disconnect()  # no socket yet: paho's loop ends instead of retrying
            raise _CredentialsUnavailable(str(exc)) from exc
        except CoplayError as exc:
            self._fetch_failed = True
            if self._stopping.is_set():
                client.disconnect()
            else:
                self._refresh_next = refresh
                self._lost(f"credentials unavailable: {exc}")
            raise _CredentialsUnavailable(str(exc)) from exc
        if creds.client_id != self._settings.client_id and self._throttle.allow("client_id"):
            self._log.warning("client_id_mismatch", wanted=creds.client_id)
        password = creds.password.reveal() if creds.password is not None else None
        client.username_pw_set(creds.username, password)

    def _rotate(self, client: mqtt.Client) -> None:
        """Point this attempt at the next broker URL (round the list; the first one first)."""
        if len(self._addresses) < 2:
            return
        address = self._addresses[self._next_address]
        self._next_address = (self._next_address + 1) % len(self._addresses)
        if address is self._address:
            return
        self._address = address
        # paho has no server list and its host/port setters refuse while it reconnects, and
        # that is the only moment to switch: set what its reconnect reads (paho-mqtt < 3).
        client._host = address.host
        client._port = address.port
        if address.transport == "websockets":
            client._websocket_path = address.path
        self._log.info("broker_switched", broker=f"{address.host}:{address.port}")

    def _fetch(self, refresh: bool) -> Credentials:
        """Credentials from the source, in a helper thread so ``stop`` never waits for it."""
        box: list[Credentials | BaseException] = []
        done = threading.Event()

        def work() -> None:
            try:
                box.append(self._credentials.refresh() if refresh else self._credentials.get())
            except BaseException as exc:  # handed to the caller below
                box.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, name="link-credentials", daemon=True).start()
        while not done.wait(0.1):
            if self._stopping.is_set():
                raise LinkStopped("the link is stopping")
        result = box[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        set_nodelay(sock)

    def _connected(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            self._refused(reason)
            return
        # Anything paho kept from the last connection is stale by now: never resend it.
        client.drop_out_messages()
        with self._cond:
            self._auth_refusals = 0
            self._online = True
        if self._subscriptions:
            rc, mid = client.subscribe(self._subscriptions)
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._pending_suback = mid
                return
            self._log.warning("subscribe_failed", rc=int(rc))
        self._ready()

    def _subscribed(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Any,
    ) -> None:
        if mid != self._pending_suback:
            return
        self._pending_suback = None
        refused = [
            topic
            for (topic, _), rc in zip(self._subscriptions, reasons, strict=False)
            if rc.is_failure
        ]
        if refused:
            self._log.warning("subscription_refused", topics=refused)
        self._ready()

    def _ready(self) -> None:
        """Connected and subscribed: the owner's on_connect first, then state CONNECTED.

        So whoever waits for CONNECTED also sees what on_connect did (a Hello, a
        retained HostState).
        """
        if self._on_connect is not None:
            try:
                self._on_connect()
            except Exception:
                self._log.exception("on_connect_failed")
        with self._cond:
            self._attempts = 0
            self._ever_connected = True
        self._set_status(LinkState.CONNECTED, "")
        self._log.info("link_connected", at=f"{self._address.host}:{self._address.port}")

    def _refused(self, reason: ReasonCode) -> None:
        text = str(reason).lower()
        if reason.value not in AUTH_REFUSED_CODES:
            self._lost(f"refused: {text}")
            return
        with self._cond:
            self._auth_refusals += 1
            refusals = self._auth_refusals
        if refusals > self._max_auth_retries:
            self._give_up(
                AuthError(
                    f"the broker refused the credentials of user {self._settings.username!r} "
                    f"({text}), also after {self._max_auth_retries} fresh ones"
                )
            )
            self._client.disconnect()
            return
        self._log.warning("credentials_refused", reason=text, refusals=refusals)
        self._refresh_next = True
        self._lost(f"{text}; fetching new credentials")

    def _connect_failed(self, client: mqtt.Client, userdata: Any) -> None:
        if self._status.state.final or self._stopping.is_set():
            return
        if self._fetch_failed:
            return  # _pre_connect already said why
        self._lost("broker unreachable")

    def _disconnected(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        with self._cond:
            was_online, self._online = self._online, False
        self._pending_suback = None
        if self._stopping.is_set() or self._status.state.final:
            return
        if was_online:
            text = str(reason).lower() if flags.is_disconnect_packet_from_server else ""
            self._lost(text or "connection lost")
            self._log.warning("link_lost", reason=self._status.reason)

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handler(msg.topic, bytes(msg.payload), msg.retain)
        except Exception:
            if self._throttle.allow("handler"):
                self._log.exception("message_handler_failed", topic=msg.topic)

    # ------------------------------------------------------------------ state

    def _lost(self, reason: str) -> None:
        state = LinkState.RECONNECTING if self._ever_connected else LinkState.STARTING
        self._set_status(state, reason)

    def _give_up(self, error: CoplayError) -> None:
        self._failure = error
        self._online = False
        self._set_status(LinkState.REFUSED, str(error))
        self._log.error("link_refused", reason=str(error))

    def _set_status(self, state: LinkState, reason: str) -> None:
        with self._cond:
            if self._status.state.final and state is not LinkState.STOPPED:
                return
            if self._status.state is LinkState.STOPPED:
                return
            status = LinkStatus(state, reason, self._attempts)
            if status == self._status:
                return
            self._status = status
            self._cond.notify_all()
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:
                self._log.exception("on_status_failed")
