"""A Reject flood beside a seated player: the player's latency with and without it.

A real host (``allow = ["alice"]``, jsonl sink) on a private Mosquitto. alice is a
paho publisher sending Inputs at 120 Hz stamped with the shared monotonic clock,
so the host's ``lat_us`` is her one-way latency. First ``SECONDS`` quiet, then
``SECONDS`` while bob (not allowed) sends ``FLOOD_HZ`` Pings a second, each with a
new epoch (the host owes him a Reject per epoch, rule 2). Reported: alice's p50
and p99 in both phases and their ratio (DESIGN's issue asks p99 within 2x), and
the Reject bytes bob got against the frame bytes he sent.

A control phase sends the same flood to a session this host does not read: what the
flood costs the machine (the flooding process, the broker) without the host's part.

Run: ``.venv/bin/python -m tests.bench.bench_reject_flood`` (prints a table, writes
``tests/bench/results/reject_flood.json``); ``BENCH_FLOOD_HZ`` changes the rate.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from relay.frames import NEUTRAL, FrameCodec, Input, Ping, Reject
from relay.serial32 import now_us32
from tests.bench.stats import summary, table, write_json
from tests.support.host_process import HostProcess
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient

MODULE = "tests.bench.bench_reject_flood"
SECONDS = 5.0
PLAYER_HZ = 120
FLOOD_HZ = int(os.environ.get("BENCH_FLOOD_HZ", "5000"))  # the embedded broker caps at 1000
BATCH = 25  # Pings per burst: FLOOD_HZ / BATCH bursts a second
CODEC = FrameCodec()


def _play(client: RawClient, topic: str, until: float) -> None:
    seq = 0
    next_at = time.monotonic()
    while next_at < until:
        seq += 1
        state = NEUTRAL._replace(buttons=seq & 1)
        client.client.publish(topic, CODEC.encode(Input.of(1, seq, now_us32(), state)), qos=0)
        next_at += 1 / PLAYER_HZ
        time.sleep(max(0.0, next_at - time.monotonic()))


def _flood(client: RawClient, topic: str, until: float) -> int:
    sent = 0
    epoch = 1
    next_at = time.monotonic()
    while next_at < until:
        for _ in range(BATCH):
            payload = CODEC.encode(Ping(epoch, now_us32()))
            client.client.publish(topic, payload, qos=0)
            sent += len(payload)
            epoch += 1
        next_at += BATCH / FLOOD_HZ
        time.sleep(max(0.0, next_at - time.monotonic()))
    return sent


def _flood_phase(
    broker: Mosquitto, alice: RawClient, in_alice: str, topic: str
) -> tuple[int, int, int]:
    """Bob floods ``topic`` from his own process while alice plays: (start ns, end ns, bytes)."""
    flood = subprocess.Popen(  # its own process: no GIL shared with alice
        [sys.executable, "-m", MODULE, "--flood", str(broker.port), topic],
        env={**os.environ, "BENCH_MQTT_PASSWORD": broker.passwords["bob"]},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert flood.stdin is not None and flood.stdout is not None
    assert flood.stdout.readline().strip() == "ready"  # started and connected
    _play(alice, in_alice, time.monotonic() + 1.0)  # settle after its start-up
    began = time.monotonic_ns()
    until = time.monotonic() + SECONDS
    flood.stdin.write("go\n")
    flood.stdin.close()
    _play(alice, in_alice, until)
    out = flood.stdout.read()
    flood.wait(30)
    return began, time.monotonic_ns(), int(out.split()[-1]) if out.strip() else 0


def _p99(values: list[int]) -> float:
    return statistics.quantiles(values, n=100)[98] / 1000 if len(values) > 1 else float("nan")


def run(workdir: Path) -> dict[str, Any]:
    broker = Mosquitto(workdir / "mosquitto")
    broker.prepare()
    broker.start()
    prefix = "bench"
    try:
        with HostProcess(
            workdir / "host", broker.port, broker.passwords["streamer"], prefix, allow=["alice"]
        ) as host:
            host.wait_ready()
            alice = RawClient(broker.port, "alice", broker.passwords["alice"])
            bob = RawClient(broker.port, "bob", broker.passwords["bob"])
            try:
                alice.wait_connected()
                bob.wait_connected()
                bob.subscribe(f"{prefix}/s1/out/bob")
                in_alice, in_bob = f"{prefix}/s1/in/alice", f"{prefix}/s1/in/bob"
                t0 = time.monotonic_ns()
                _play(alice, in_alice, time.monotonic() + SECONDS)
                t_quiet_end = time.monotonic_ns()
                phases: dict[str, tuple[int, int, int]] = {}
                for phase, topic in (
                    ("control", f"{prefix}/s2/in/bob"),  # a session this host does not read
                    ("flood", in_bob),
                ):
                    phases[phase] = _flood_phase(broker, alice, in_alice, topic)
                time.sleep(0.5)  # the last Rejects on their way
                rejects = [
                    m for m in bob.inbox.snapshot() if isinstance(CODEC.decode(m.payload), Reject)
                ]
            finally:
                alice.close()
                bob.close()
            lines = [x for x in host.jsonl.lines() if x["reason"] == "input"]
    finally:
        broker.stop()

    def lat(began: int, ended: int) -> list[int]:
        return [x["lat_us"] for x in lines if began <= x["t_ns"] <= ended]

    rows = {
        "quiet": lat(t0, t_quiet_end),
        "control: the same flood to a session the host does not read": lat(*phases["control"][:2]),
        "Reject flood": lat(*phases["flood"][:2]),
    }
    bytes_in = phases["flood"][2]
    bytes_out = sum(len(m.payload) for m in rejects)
    quiet, control, during = rows.values()
    ratio = _p99(during) / _p99(quiet)
    print(
        table(
            f"Reject flood ({FLOOD_HZ} Pings/s, a new epoch each, from a user not allowed) "
            f"beside a player at {PLAYER_HZ} Hz, via Mosquitto, {SECONDS:g} s each",
            ["phase", "inputs", "p50 ms", "p99 ms"],
            [
                [name, len(values), statistics.median(values) / 1000, _p99(values)]
                for name, values in rows.items()
            ],
        )
    )
    print(
        f"  p99 flood / quiet: {ratio:.2f}x, flood / control: {_p99(during) / _p99(control):.2f}x"
        f" (asked: <= 2x); Rejects {len(rejects)}, {bytes_out} B out for {bytes_in} B of Pings in"
    )
    result = {
        "flood_hz": FLOOD_HZ,
        "player_hz": PLAYER_HZ,
        "quiet_us": summary(quiet),
        "control_us": summary(control),
        "during_us": summary(during),
        "p99_ratio": ratio,
        "rejects": len(rejects),
        "reject_bytes_out": bytes_out,
        "ping_bytes_in": bytes_in,
    }
    write_json("reject_flood", result)
    return result


def flood_main(port: int, topic: str) -> None:
    """The flooding process: bob's Pings for SECONDS; prints the bytes it sent."""
    bob = RawClient(port, "bob", os.environ["BENCH_MQTT_PASSWORD"])
    try:
        bob.wait_connected()
        print("ready", flush=True)
        sys.stdin.readline()
        print(_flood(bob, topic, time.monotonic() + SECONDS))
    finally:
        bob.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        flood_main(int(sys.argv[2]), sys.argv[3])
    else:
        with tempfile.TemporaryDirectory(prefix="bench-reject-") as tmp:
            run(Path(tmp))
