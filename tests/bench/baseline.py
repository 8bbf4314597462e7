"""The baseline: a bare paho publisher process -> a bare paho subscriber, through one broker.

Both set TCP_NODELAY. The subscriber stamps each message as it arrives, the way
the host's sink stamps a state, so the two latencies compare like for like.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass

from relay.frames import FrameCodec, Input
from relay.serial32 import elapsed_us, us32
from tests.support.mqtt import RawClient


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    client_id: str = ""


def bare_paho_latency(
    port: int, pub: Login, sub: Login, prefix: str, rate_hz: float, seconds: float
) -> list[int]:
    """One-way latencies in microseconds, every message counted from the first."""
    topic = f"{prefix}/bench/in/{pub.username}"
    receiver = RawClient(port, sub.username, sub.password, client_id=sub.client_id)
    try:
        receiver.wait_connected()
        receiver.subscribe(f"{prefix}/bench/in/+", qos=0)
        env = dict(os.environ, BENCH_MQTT_PASSWORD=pub.password, BENCH_CLIENT_ID=pub.client_id)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench.paho_pub",
                str(port),
                pub.username,
                topic,
                str(rate_hz),
                str(seconds),
            ],
            env=env,
            check=True,
            timeout=seconds + 30,
        )
        expected = int(rate_hz * seconds * 0.98)
        with contextlib.suppress(TimeoutError):  # QoS 0: report what arrived
            receiver.inbox.wait_count(expected, timeout=5)
        codec = FrameCodec()
        lats = []
        for msg in receiver.inbox.snapshot():
            frame = codec.decode(msg.payload)
            if isinstance(frame, Input):
                lat = elapsed_us(us32(msg.at_ns), frame.t)
                if lat is not None:
                    lats.append(lat)
        return lats
    finally:
        receiver.close()
