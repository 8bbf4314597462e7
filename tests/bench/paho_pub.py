"""A bare paho publisher (the baseline): stamps t and publishes a 24-byte payload at a fixed rate.

Run as a process: ``python -m tests.bench.paho_pub PORT USERNAME TOPIC RATE_HZ SECONDS``;
the password comes from the BENCH_MQTT_PASSWORD environment variable.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from relay.frames import NEUTRAL, FrameCodec, Input
from relay.serial32 import now_us32


def _nodelay(sock: object) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main() -> int:
    port, username, topic, rate, seconds = (
        int(sys.argv[1]),
        sys.argv[2],
        sys.argv[3],
        float(sys.argv[4]),
        float(sys.argv[5]),
    )
    client_id = os.environ.get("BENCH_CLIENT_ID") or f"bench-pub-{os.getpid()}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(username, os.environ["BENCH_MQTT_PASSWORD"])
    client.on_socket_open = lambda c, u, sock: _nodelay(sock)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not connected.wait(10):
        return 1
    codec = FrameCodec()
    period = 1.0 / rate
    next_at = time.monotonic()
    end = next_at + seconds
    seq = 0
    while next_at < end:
        seq += 1
        state = NEUTRAL._replace(buttons=seq & 1, lx=(seq * 97) % 30000)
        client.publish(topic, codec.encode(Input.of(1, seq, now_us32(), state)), qos=0)
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # a fixed-rate sender: the wait is the rate
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
