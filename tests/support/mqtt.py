"""A raw paho client for tests, and an inbox that can be awaited."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at_ns: int


class Inbox:
    """Messages a test client received, with waiting on a condition instead of sleeping."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.messages: list[Received] = []

    def add(self, message: Received) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0
    ) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.messages), timeout):
                raise TimeoutError(f"condition not met in {timeout}s; got {len(self.messages)}")
            return list(self.messages)

    def wait_count(self, n: int, timeout: float = 5.0) -> list[Received]:
        return self.wait_for(lambda m: len(m) >= n, timeout)

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)


class RawClient:
    """A connected paho client with an inbox; ``close`` stops it."""

    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        client_id: str = "",
        will: tuple[str, bytes, int, bool] | None = None,
        clean: bool = True,
        transport: str = "tcp",  # or "websockets"
        ca_file: str | None = None,  # TLS, verified against this CA
    ) -> None:
        self.inbox = Inbox()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            transport=transport,  # type: ignore[arg-type]
        )
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will[0], will[1], will[2], will[3])
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.disconnected = threading.Event()  # set when a connection that was up goes down
        self.reason: str | None = None
        self.granted: list[bool] = []  # per SUBACK: was the last subscription granted
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        self.client.on_socket_open = lambda c, u, sock: _nodelay(sock)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        self.reason = str(reason_code)
        self._connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):  # type: ignore[no-untyped-def]
        self.granted.append(not any(rc.is_failure for rc in reason_codes))
        self._subscribed.set()

    def _on_message(self, client, userdata, msg):  # type: ignore[no-untyped-def]
        self.inbox.add(Received(msg.topic, msg.payload, msg.retain, msg.qos, time.monotonic_ns()))

    def wait_connected(self, timeout: float = 5.0) -> str:
        if not self._connected.wait(timeout):
            raise TimeoutError("no CONNACK")
        return self.reason or ""

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos)
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos, retain)
        if qos:
            info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Cut the connection without DISCONNECT, so the broker sends the Last Will."""
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()


def _nodelay(sock: object) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
