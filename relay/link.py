"""The MQTT link both host and guest use: connect with fresh credentials, stay connected.

One :class:`Link` wraps one paho-mqtt 2.x client (``CallbackAPIVersion.VERSION2``)
running its own network thread (``connect_async`` + ``loop_start``). This file
holds the connection's state machine: paho's callbacks, subscription restore,
publish and stop. The rest lives next door, one idea a file:

- :mod:`relay.brokeraddress`: broker URLs (several: the next one on every reconnect),
  TLS, TCP_NODELAY, the paho client built for them;
- :mod:`relay.linkattempts`: what each connect attempt does before paho's
  CONNECT (broker, credentials) and after a refusal; it steers paho with an
  OSError from ``on_pre_connect``, the one way paho 2.x lets a callback fail
  an attempt (see ``AttemptSkipped``);
- :mod:`relay.credentialfetch`: credentials from a
  :class:`~relay.tokens.CredentialSource` just before each (re)connect, fetched
  on one worker thread while no connection exists, so a slow token fetch never
  stalls publishing and :meth:`Link.stop` never waits for it;
- :mod:`relay.authretry`: when a refused password makes the next attempt ask
  for fresh credentials, and when the link gives up (state REFUSED,
  ``failure`` an AuthError);
- :mod:`relay.linkstatus`: states, statuses and the board that holds them;
- :mod:`relay.mqttclient`: a publish on a plain TCP connection is written on
  the publishing thread, without a wake-up of paho's network thread.

Behaviour:

- Subscriptions are restored after every connect, then ``on_connect`` runs, then
  the state becomes CONNECTED. ``subscribe_qos`` caps their QoS (0 on a NATS
  cluster, where a QoS 1 subscription is a replicated JetStream consumer).
- ``publish`` never queues: while not connected it returns False at once (a stale
  input frame delivered late is worse than none), and QoS 1 messages still
  unacknowledged when a connection drops are not resent on the next one.
- An exception raised in a callback on paho's thread (the owner's message
  handler, ``on_connect`` or ``on_status``, or the link's own) never ends the
  network thread: it is counted in ``status.callback_errors`` and logged (at most
  once per 10 s per callback).

States: STARTING (until the first connect) -> CONNECTED <-> RECONNECTING; REFUSED
and STOPPED are final.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from relay.brokeraddress import connect_async, new_client, set_nodelay, tcp_socket
from relay.config import LinkSettings
from relay.errors import CoplayError
from relay.linkattempts import Attempts
from relay.linkstatus import LinkState, LinkStatus, Message, MessageHandler, StatusBoard
from relay.tokens import CredentialSource

P = ParamSpec("P")


def _guarded(board: StatusBoard, name: str, callback: Callable[P, None]) -> Callable[P, None]:
    """``callback`` as paho's ``name``: what it raises is counted and logged, never handed on.

    (paho re-raises a callback's exception, which ends its network thread.)
    """

    @functools.wraps(callback)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            board.callback_failed(f"link_{name}")

    return guarded


class _Subscriptions:
    """The link's subscriptions, restored after every connect (paho's network thread only)."""

    def __init__(self, wanted: Sequence[tuple[str, int]], max_qos: int) -> None:
        self.topics = [(topic, min(qos, max_qos)) for topic, qos in wanted]
        self._pending: int | None = None  # mid of the SUBSCRIBE whose SUBACK is awaited

    def restore(self, client: mqtt.Client, log: Any) -> bool:
        """Subscribe again; True while the SUBACK is awaited, False if there is none to wait for."""
        if not self.topics:
            return False
        rc, mid = client.subscribe(self.topics)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("subscribe_failed", rc=int(rc))
            return False
        self._pending = mid
        return True

    def acked(self, mid: int, reasons: list[ReasonCode], log: Any) -> bool:
        """True if this SUBACK is the awaited one (refused topics are logged, not fatal)."""
        if mid != self._pending:
            return False
        self._pending = None
        refused = [
            topic for (topic, _), rc in zip(self.topics, reasons, strict=False) if rc.is_failure
        ]
        if refused:
            log.warning("subscription_refused", topics=refused)
        return True

    def forget(self) -> None:
        """The connection is gone: no SUBACK is coming."""
        self._pending = None


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
        self._handler = on_message
        self._on_connect = on_connect
        self._log = structlog.get_logger("relay.link").bind(broker=settings.broker_url)
        self._board = StatusBoard(on_status, self._log)
        self._subscriptions = _Subscriptions(subscriptions, settings.subscribe_qos)
        self._stopping = threading.Event()
        self._attempts = Attempts(
            settings, credentials, self._board, self._stopping, self._log, max_auth_retries
        )
        self._online = False  # CONNACK accepted and not lost since: publish may go out
        self._start_lock = threading.Lock()
        self._started = False
        client = new_client(
            settings,
            self._attempts.ring.current,
            will=will,
            connect_timeout_s=connect_timeout_s,
            reconnect_min_s=reconnect_min_s,
            reconnect_max_s=reconnect_max_s,
        )
        # Not guarded: its AttemptSkipped (an OSError) must reach paho; it counts its own bugs.
        client.on_pre_connect = lambda _client, _userdata: self._attempts.prepare(client)
        client.on_socket_open = _guarded(self._board, "on_socket_open", self._socket_open)
        client.on_connect = _guarded(self._board, "on_connect", self._connected)
        client.on_connect_fail = _guarded(self._board, "on_connect_fail", self._connect_failed)
        client.on_disconnect = _guarded(self._board, "on_disconnect", self._disconnected)
        client.on_subscribe = _guarded(self._board, "on_subscribe", self._subscribed)
        client.on_message = _guarded(self._board, "on_message", self._message)
        self._client = client

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Connect in the background (connect_async + loop_start); returns at once."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        connect_async(self._client, self._settings, self._attempts.ring.current)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected (True), or refused/stopped or ``timeout`` passed (False)."""
        status = self._board.wait(lambda s: s is LinkState.CONNECTED or s.final, timeout)
        return status.state is LinkState.CONNECTED

    def wait_state(self, states: Sequence[LinkState], timeout: float) -> LinkStatus:
        """Wait until the state is one of ``states`` (or ``timeout``); the status then."""
        return self._board.wait(lambda s: s in states, timeout)

    @property
    def status(self) -> LinkStatus:
        """The state now, with ``callback_errors`` counted up to now."""
        return self._board.status

    @property
    def failure(self) -> CoplayError | None:
        """Why the link gave up for good (AuthError -> exit 77), else None."""
        return self._board.failure

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
        if self._online:
            _send_finals(self._client, final, time.monotonic() + timeout, self._log)
        self._stopping.set()
        self._attempts.stop()  # a connect attempt waiting for credentials gives up now
        self._online = False
        self._client.disconnect()  # a clean DISCONNECT: the broker drops our Last Will
        if self._started:
            self._client.loop_stop()
        self._board.stopped()

    # ------------------------------------------------------------------ paho callbacks

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
            self._attempts.refused(self._client, reason)
            return
        # Anything paho kept from the last connection is stale by now: never resend it.
        client.drop_out_messages()
        self._attempts.accepted()
        self._online = True
        if not self._subscriptions.restore(client, self._log):
            self._ready()

    def _subscribed(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Any,
    ) -> None:
        if self._subscriptions.acked(mid, reasons, self._log):
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
                self._board.callback_failed("on_connect")
        self._board.connected()
        self._log.info("link_connected", at=str(self._attempts.ring.current))

    def _connect_failed(self, client: mqtt.Client, userdata: Any) -> None:
        if self._board.status.state.final or self._stopping.is_set():
            return
        if self._attempts.fetch_failed:
            return  # Attempts.prepare already said why
        self._board.lost("broker unreachable")

    def _disconnected(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        was_online, self._online = self._online, False
        self._subscriptions.forget()
        if self._stopping.is_set() or self._board.status.state.final:
            return
        if was_online:
            text = str(reason).lower() if flags.is_disconnect_packet_from_server else ""
            self._board.lost(text or "connection lost")
            self._log.warning("link_lost", reason=self._board.status.reason)

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handler(msg.topic, bytes(msg.payload), msg.retain)
        except Exception:
            self._board.callback_failed("message_handler", topic=msg.topic)


def _send_finals(client: mqtt.Client, final: Sequence[Message], deadline: float, log: Any) -> None:
    """Publish ``final``; wait for the QoS 1 ones to be acknowledged until ``deadline``."""
    pending = []
    for message in final:
        info = client.publish(message.topic, message.payload, message.qos, message.retain)
        if message.qos and info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            pending.append(info)
    for info in pending:
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
    unacked = sum(1 for info in pending if not info.is_published())
    if unacked:
        log.warning("final_messages_unacked", count=unacked)
