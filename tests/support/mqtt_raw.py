"""MQTT 3.1.1 packets built by hand, for clients that misbehave on purpose (a paho client won't).

``RawSocket`` is a blocking loopback socket that sends these and reads what comes back;
``closed_within(s)`` tells whether the broker closed the connection in time.
"""

from __future__ import annotations

import socket
import struct
import time


def _text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def remaining_length(length: int) -> bytes:
    encoded = b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return encoded


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining_length(len(body)) + body


def connect(client_id: str, username: str | bytes, password: str, keepalive: int = 30) -> bytes:
    flags = 0x80 | 0x40 | 0x02  # username, password, clean session
    variable = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return packet(0x10, variable + _text(client_id) + _text(username) + _text(password))


def subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_text(f) + bytes([q]) for f, q in filters)
    return packet(0x82, body)


def publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False, pid: int = 1) -> bytes:
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    body = _text(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return packet(first, body)


class RawSocket:
    """One TCP connection to a broker on loopback; ``close`` ends it."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_some(self, timeout: float = 5.0) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(65536)

    def closed_within(self, seconds: float) -> bool:
        """True when the broker closes the connection (EOF or reset) within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()
