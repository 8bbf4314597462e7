"""A paho client whose publishes leave from the caller's thread, without waking the network thread.

Stock paho 2.x in threaded mode (``loop_start``) queues each outgoing packet and
writes one byte to an internal socket pair so that its network thread leaves
``select``, reads the byte and writes the packet: every publish costs a second
thread two wake-ups and four system calls. :class:`DirectWriteClient` writes the
packet itself, on the publishing thread, when that is safe:

- only PUBLISH packets (CONNECT, PINGREQ and DISCONNECT stay on the network
  thread, so the socket is opened and closed where paho expects);
- only while connected (CONNACK received), so nothing overtakes a CONNECT;
- only on a plain TCP socket (TLS and websocket wrappers keep per-connection
  state that the network thread also uses while it reads, so they take paho's
  path unchanged);
- every write, paho's own and ours, holds one lock, so two threads never
  interleave bytes of two packets, and packets leave in the order queued;
- anything that did not go out whole (a full socket buffer, no socket yet, an
  error) stays queued and the network thread is woken as before: it waits for
  the socket to become writable or notices the lost connection, exactly as
  stock paho does.

It overrides two private methods of ``paho.mqtt.client.Client``
(``_packet_queue`` and ``_packet_write``); ``pyproject.toml`` bounds paho below
the next major version for that reason, and ``DIRECT_WRITE_SUPPORTED`` turns the
direct path off if those names ever go away.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

_PUBLISH = 0x30  # MQTT fixed-header packet type of PUBLISH (connect, ping, disconnect: paho's way)
DIRECT_WRITE_SUPPORTED = all(
    hasattr(mqtt.Client, name) for name in ("_packet_queue", "_packet_write", "_sock_send")
)


class DirectWriteClient(mqtt.Client):
    """``mqtt.Client`` that writes queued packets on the caller's thread (plain TCP only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Reentrant: paho calls on_publish from inside _packet_write, and a callback may publish.
        self._write_lock = threading.RLock()
        self.direct_writes = 0  # packets that left on the publishing thread
        self.deferred_writes = 0  # packets handed to the network thread instead

    def _packet_write(self) -> MQTTErrorCode:
        with self._write_lock:
            rc: MQTTErrorCode = super()._packet_write()
            return rc

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: mqtt.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        if (
            command & 0xF0 != _PUBLISH
            or not DIRECT_WRITE_SUPPORTED
            or self._thread is None
            or not self.is_connected()  # not while (re)connecting: CONNECT must go first
            or not _plain_tcp(self._sock)
        ):
            rc: MQTTErrorCode = super()._packet_queue(command, packet, mid, qos, info)
            return rc
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        rc = self._packet_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._out_packet:
            self.direct_writes += 1
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        # Not all of it left: the network thread takes over (it selects for writability,
        # or sees the connection is gone), as for any packet in stock paho.
        self.deferred_writes += 1
        wake = self._sockpairW
        if wake is not None:
            with contextlib.suppress(BlockingIOError):
                wake.send(b"0")
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _plain_tcp(sock: object) -> bool:
    return isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)
