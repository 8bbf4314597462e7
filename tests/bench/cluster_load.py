"""Many simulated guests in one process: each a paho client publishing Input frames at a fixed rate.

Run as ``python -m tests.bench.cluster_load PORT RATE_HZ SECONDS``, with one
JSON object per guest on stdin (``{"user", "client_id", "password", "topic"}``;
passwords never go on the command line). Every guest logs in, then one pacing
loop sends each of them a frame stamped with ``t`` per period, spread over the
period. Prints one JSON line: how many connected and how many frames were sent
(the load generator shares the machine's cores with the broker).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from relay.frames import NEUTRAL, FrameCodec, Input
from relay.serial32 import now_us32

CONNECT_WAIT_S = 30.0


def _nodelay(sock: object) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main() -> int:
    port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    guests = [json.loads(line) for line in sys.stdin if line.strip()]
    clients: list[tuple[mqtt.Client, str]] = []
    connected = threading.Semaphore(0)
    for guest in guests:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=guest["client_id"])
        client.username_pw_set(guest["user"], guest["password"])
        client.on_socket_open = lambda c, u, sock: _nodelay(sock)
        client.on_connect = lambda *a: connected.release()
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        clients.append((client, guest["topic"]))
    up = sum(connected.acquire(timeout=CONNECT_WAIT_S) for _ in clients)
    codec = FrameCodec()
    period = 1.0 / rate
    start = time.monotonic()
    sent = 0
    tick = 0
    while time.monotonic() - start < seconds:
        due = start + tick * period
        for i, (client, topic) in enumerate(clients):
            at = due + period * i / len(clients)
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # a fixed-rate sender: the wait is the rate
            state = NEUTRAL._replace(buttons=tick & 1, lx=(tick * 97) % 30000)
            frame = codec.encode(Input.of(1, tick + 1, now_us32(), state))
            client.publish(topic, frame, qos=0)
            sent += 1
        tick += 1
    for client, _ in clients:
        client.disconnect()
        client.loop_stop()
    print(json.dumps({"connected": up, "guests": len(clients), "sent": sent}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
