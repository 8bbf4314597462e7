"""The scale path: latency via a 3-node NATS cluster beside Mosquitto and the embedded broker,
and how many 120 Hz guests one NATS node carries (p99 under 5 ms) against the embedded broker.

Starts its own Mosquitto, relay (token API + embedded broker) and NATS
cluster (:mod:`tests.support.nats_cluster`: three nodes and the relay's auth
callout), all on loopback, and stops them.

1. Latency, one run: a real ``coplay-host`` and a real ``coplay-guest`` at
   120 Hz (as in ``bench_latency``) via Mosquitto, the embedded broker, NATS
   with host and guest on the same node, and NATS with them on different
   nodes; the bare paho pub -> sub baseline where both ends share one port.
2. Throughput: N simulated guests (``tests.bench.cluster_load``, real user
   tokens, one login each) publish Input frames at 120 Hz into one broker
   node; one host login on that node subscribes to every ``in/`` topic and
   stamps arrivals. N doubles until p99 passes 5 ms or fewer than 98 % of the
   frames arrive; the largest N that held is the node's capacity on this
   machine. The load generator runs on the same two cores as the broker, so
   this is a floor, not the broker's ceiling.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from relay.frames import FrameCodec, Input
from relay.serial32 import elapsed_us, us32
from tests.bench.baseline import bare_paho_latency
from tests.bench.bench_latency import coplay_latency
from tests.bench.rig import (
    HOST,
    EmbeddedRig,
    MosquittoRig,
    Rig,
    TokenHostProcess,
)
from tests.bench.stats import summary, table, write_json
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient
from tests.support.nats_cluster import NatsCluster, NatsNodeProcess
from tests.support.relay_service import ROOT, RelayService

RATE_HZ = 120
P99_LIMIT_MS = 5.0
DELIVERED_MIN = 0.98
STEPS = (5, 10, 20, 40, 80, 160, 320)
LOAD_PROCESSES = 2
GENERATOR_MIN = 0.95  # below this share of the offered frames sent, the generator is the limit


def _tag() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class NatsHostProcess(TokenHostProcess):
    """A token-flow host that subscribes at QoS 0, as README advises on a NATS cluster."""

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text().replace(
            "keepalive_s = 5\n", "keepalive_s = 5\nsubscribe_qos = 0\n", 1
        )
        path.write_text(text)
        return path


@dataclass(kw_only=True)
class NatsRig(EmbeddedRig):
    """Host on ``host_node``, guest on ``guest_node`` of a cluster behind ``relay``'s callout."""

    host_node: NatsNodeProcess
    guest_node: NatsNodeProcess

    host_class: ClassVar[type[TokenHostProcess]] = NatsHostProcess
    guest_relay_extra: ClassVar[str] = "subscribe_qos = 0\n"  # as README advises on NATS

    @property
    def port(self) -> int:
        return self.guest_node.mqtt_port

    @property
    def host_port(self) -> int:
        return self.host_node.mqtt_port

    @property
    def guest_broker_url(self) -> str:
        return self.guest_node.mqtt_url


def latency(rig: Rig, workdir: Path, seconds: float, bare: bool) -> dict[str, Any]:
    ours = coplay_latency(rig, workdir, seconds, rest_samples=0)  # steady 120 Hz only
    result: dict[str, Any] = {
        "broker": rig.name,
        "coplay_us": summary(ours["lat_us"]),
        "applied": ours["applied"],
    }
    if bare:
        pub, sub = rig.logins()
        lats = bare_paho_latency(rig.port, pub, sub, rig.place().prefix, RATE_HZ, seconds)
        result["bare_paho_us"] = summary(lats)
    return result


# ---------------------------------------------------------------- throughput


def _guests(relay: RelayService, session: str, count: int) -> list[dict[str, str]]:
    out = []
    for i in range(count):
        user, device = f"g{i}", f"load{i}-{_tag()}"
        out.append(
            {
                "user": user,
                "client_id": relay.cid(device),
                "password": relay.user_token(user, device),
                "topic": f"{relay.topic_prefix}/{session}/in/{user}",
            }
        )
    return out


def load_step(relay: RelayService, port: int, count: int, seconds: float) -> dict[str, Any]:
    """``count`` guests at 120 Hz into ``port`` for ``seconds``; latencies seen by one host."""
    session = f"load{_tag()}"
    guests = _guests(relay, session, count)
    device = f"loadhost-{_tag()}"
    host = RawClient(port, HOST, relay.user_token(HOST, device), client_id=relay.cid(device))
    try:
        host.wait_connected(20)
        host.subscribe(f"{relay.topic_prefix}/{session}/in/+", qos=0)
        procs = []
        for part in range(LOAD_PROCESSES):
            mine = guests[part::LOAD_PROCESSES]
            if not mine:
                continue
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.cluster_load", str(port), str(RATE_HZ),
                 str(seconds)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
            )  # fmt: skip
            assert proc.stdin is not None
            proc.stdin.write("".join(json.dumps(g) + "\n" for g in mine))
            proc.stdin.close()
            procs.append(proc)
        reports = []
        for proc in procs:
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.wait(timeout=seconds + 90)
            reports.append(json.loads(out.strip().splitlines()[-1]))
        sent = sum(r["sent"] for r in reports)
        connected = sum(r["connected"] for r in reports)
        with contextlib.suppress(TimeoutError):
            host.inbox.wait_count(sent, timeout=2)
        codec = FrameCodec()
        lats = []
        for msg in host.inbox.snapshot():
            frame = codec.decode(msg.payload)
            if (
                isinstance(frame, Input)
                and (lat := elapsed_us(us32(msg.at_ns), frame.t)) is not None
            ):
                lats.append(lat)
    finally:
        host.close()
    stats = summary(lats)
    return {
        "guests": count,
        "connected": connected,
        "sent": sent,
        "received": len(lats),
        "delivered": len(lats) / sent if sent else 0.0,
        "offered_per_s": count * RATE_HZ,
        "sent_share": sent / (count * RATE_HZ * seconds),  # < 1: the generator fell behind
        "lat_us": stats,
        "carried": connected == count and sent > 0 and len(lats) / sent >= DELIVERED_MIN,
        "held": connected == count
        and sent > 0
        and len(lats) / sent >= DELIVERED_MIN
        and stats["p99"] / 1000 < P99_LIMIT_MS,
    }


def capacity(name: str, relay: RelayService, port: int, seconds: float) -> dict[str, Any]:
    steps = []
    for count in STEPS:
        step = load_step(relay, port, count, seconds)
        steps.append(step)
        print(
            f"  {name}: {count} guests, {step['offered_per_s']} frames/s offered, "
            f"{step['sent_share'] * 100:.0f} % sent, {step['delivered'] * 100:.1f} % delivered, "
            f"p99 {step['lat_us']['p99'] / 1000:.2f} ms -> {_verdict(step)}"
        )
        if not step["carried"] or step["sent_share"] < GENERATOR_MIN:
            break  # the broker (or the load generator on the same cores) is saturated
    held = [s["guests"] for s in steps if s["held"]]
    carried = [s["guests"] for s in steps if s["carried"]]
    return {
        "broker": name,
        "steps": steps,
        "guests_held": max(held, default=0),
        "guests_carried": max(carried, default=0),
        "generator_bound": bool(steps) and steps[-1]["sent_share"] < GENERATOR_MIN,
    }


def _verdict(step: dict[str, Any]) -> str:
    if step["held"]:
        return f"held (p99 < {P99_LIMIT_MS:g} ms)"
    return "carried, p99 over" if step["carried"] else "NOT carried"


# ---------------------------------------------------------------- the run


def run(workdir: Path, seconds: float, load_seconds: float = 3.0) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir / "mosquitto")
    broker.prepare()
    broker.start()
    relay = RelayService(workdir / "relay")
    cluster: NatsCluster | None = None
    try:
        relay.start()
        cluster = NatsCluster(workdir / "nats", relay).start()
        n1, n2, _ = cluster.nodes
        rigs: list[tuple[Rig, bool]] = [
            (MosquittoRig(broker), True),
            (EmbeddedRig(relay), True),
            (NatsRig(relay, "nats, same node", host_node=n1, guest_node=n1), True),
            (NatsRig(relay, "nats, across nodes", host_node=n1, guest_node=n2), False),
        ]
        lat = [
            latency(rig, workdir / f"lat-{i}", seconds, bare) for i, (rig, bare) in enumerate(rigs)
        ]
        load = [
            capacity("embedded", relay, relay.mqtt_port, load_seconds),
            capacity("nats node", relay, n1.mqtt_port, load_seconds),
        ]
    finally:
        if cluster is not None:
            cluster.stop()
        with contextlib.suppress(Exception):
            relay.stop()
        relay.kill()
        broker.stop()
    print(_latency_table(lat, seconds))
    print(_load_table(load, load_seconds))
    result = {
        "rate_hz": RATE_HZ,
        "seconds": seconds,
        "latency": lat,
        "capacity": load,
        "p99_limit_ms": P99_LIMIT_MS,
        "load_average": os.getloadavg(),
    }
    write_json("cluster", result)
    return result


def _ms(s: dict[str, float], keys: tuple[str, ...] = ("p50", "p99", "p99.9", "max")) -> list[Any]:
    return [s[k] / 1000 for k in keys]


def _latency_table(rows: list[dict[str, Any]], seconds: float) -> str:
    body = []
    for r in rows:
        bare = r.get("bare_paho_us")
        body.append(
            [r["broker"], int(r["coplay_us"]["n"]), *_ms(r["coplay_us"]),
             bare["p50"] / 1000 if bare else float("nan")]
        )  # fmt: skip
    return table(
        f"Guest -> host sink latency at {RATE_HZ} Hz for {seconds:g} s per broker, ms (one run)",
        ["broker", "n", "p50", "p99", "p99.9", "max", "bare paho p50"],
        body,
    )


def _load_table(rows: list[dict[str, Any]], seconds: float) -> str:
    body: list[list[Any]] = []
    for r in rows:
        for s in r["steps"]:
            body.append(
                [r["broker"], s["guests"], s["offered_per_s"], f"{s['sent_share'] * 100:.0f} %",
                 f"{s['delivered'] * 100:.1f} %", *_ms(s["lat_us"], ("p50", "p99")), _verdict(s)]
            )  # fmt: skip
    return table(
        f"Guests at {RATE_HZ} Hz into one broker node, {seconds:g} s per step "
        f"(carried: >= {DELIVERED_MIN * 100:g} % delivered; held: carried and p99 < "
        f"{P99_LIMIT_MS:g} ms; sent < {GENERATOR_MIN * 100:g} %: the load generator fell behind)",
        ["broker", "guests", "frames/s", "sent", "delivered", "p50 ms", "p99 ms", "verdict"],
        body,
    )
