"""Where the broker is and how to reach it: URLs, TLS, socket options, the paho client for them.

- ``mqtt://``, ``mqtts://``, ``ws://`` and ``wss://`` broker URLs (websocket path
  from the URL, default ``/mqtt``); TLS verifies the broker unless ``tls_verify``
  is off; MQTT 3.1.1 by default, 5 on request.
- Several broker URLs (a cluster's nodes, one scheme for all): a
  :class:`BrokerRing` hands out the first one for the first attempt and the next
  one, round the list, for every attempt after.
- TCP_NODELAY on every socket: paho leaves Nagle on, which holds small input
  frames back by tens of milliseconds.

:mod:`relay.link` builds its client with :func:`new_client` and points it at
the ring's next address before each attempt with :func:`point_at`.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from relay.config import BROKER_SCHEMES, LinkSettings
from relay.errors import ConfigError
from relay.linkstatus import Message
from relay.mqttclient import DirectWriteClient


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

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class BrokerRing:
    """The broker URLs of a link, handed out round the list: the first one first."""

    def __init__(self, settings: LinkSettings) -> None:
        urls = settings.broker_urls or (settings.broker_url,)
        self.addresses = tuple(BrokerAddress.parse(url) for url in urls)
        self.current = self.addresses[0]
        self._next = 0

    def advance(self) -> BrokerAddress | None:
        """The address for the next attempt if it differs from the current one, else None."""
        if len(self.addresses) < 2:
            return None
        address = self.addresses[self._next]
        self._next = (self._next + 1) % len(self.addresses)
        if address is self.current:
            return None
        self.current = address
        return address


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
        raise ConfigError(f"ca_file {ca_file}: cannot load CA certificates ({exc})") from exc
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


def new_client(
    settings: LinkSettings,
    address: BrokerAddress,
    *,
    will: Message | None,
    connect_timeout_s: float,
    reconnect_min_s: float,
    reconnect_max_s: float,
) -> DirectWriteClient:
    """A paho 2.x client for ``address``: protocol, transport, TLS, Last Will, timeouts."""
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
    # paho annotates the delays as int but computes with floats; sub-second delays are fine.
    client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]
    return client


def connect_async(
    client: DirectWriteClient, settings: LinkSettings, address: BrokerAddress
) -> None:
    """Set the first connect up for paho's network loop (``loop_start`` makes it)."""
    kwargs: dict[str, Any] = {}
    if settings.mqtt_version == "5":
        kwargs["clean_start"] = True
    client.connect_async(address.host, address.port, keepalive=settings.keepalive_s, **kwargs)


def point_at(client: DirectWriteClient, address: BrokerAddress) -> None:
    """Make paho's next (re)connect go to ``address`` (call only from ``on_pre_connect``)."""
    # paho has no server list and its host/port setters refuse while it reconnects, and
    # that is the only moment to switch: set what its reconnect reads (paho-mqtt < 3).
    client._host = address.host
    client._port = address.port
    if address.transport == "websockets":
        client._websocket_path = address.path
