"""Host cost per applied frame, in-process: :meth:`HostDaemon.on_message` with a null sink.

What one call does is what paho's network thread does for every Input frame:
the size and retained checks, the topic, the decode, the seat table, the
queue, and (the null sink never blocks, so the fast path applies it on the
calling thread) the sink write. Measured with ``perf_counter_ns`` around each
call, GC on, pad writer thread running, as in production. DESIGN budget:
median <= 25 us.

Beside it, for scale: the same with the jsonl sink (one ``write(2)`` per
state, the sink the latency benchmark reads), and the hand-off through the pad
writer thread for a sink that may block (no fast path): the time from the call
to the sink's ``apply`` on the other thread.

The ``writer wake-ups`` column counts how often the pad writer thread woke
during the row (:attr:`host.writerstats.WriterStats.wakeups`): on the direct
path a frame must not wake it (0 or so per row: the seat taken, a heartbeat),
on the hand-off path every state does.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from host.daemon import HostDaemon
from host.faults import Faults
from host.intake import Intake
from host.notify import NullNotifier
from host.parts import HostParts
from host.seats import SeatTable
from host.sinks.base import FrameMeta, RumbleCallback, Sink
from host.sinks.jsonl import JsonlSink
from host.sinks.null import NullSink
from host.writer import PadWriter
from relay.clock import SystemClock
from relay.config import HostSection
from relay.errors import CoplayError
from relay.frames import FrameCodec, Input, PadState, Ping
from relay.linkstatus import LinkLike, LinkState, LinkStatus, Message
from relay.serial32 import now_us32
from relay.topics import Topics
from tests.bench.budget import Budget
from tests.bench.stats import summary, table, write_json

BUDGET_US = 25.0
TOPIC_PREFIX, SESSION, USER = "coplay", "s1", "alice"


class OfflineLink:
    """A link that never connects: replies and HostState go nowhere."""

    failure: CoplayError | None = None

    @property
    def status(self) -> LinkStatus:
        return LinkStatus(LinkState.STARTING)

    def start(self) -> None:
        pass

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        return True

    def stop(self, final: Sequence[Message] = (), timeout: float = 2.0) -> None:
        pass


class Quiet:
    """A logger that drops everything (a seat taken is logged once; not part of the cost)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class HandOffSink:
    """A sink without ``nonblocking``: states go through the writer thread; stamps each apply."""

    def __init__(self) -> None:
        self.applied = threading.Event()
        self.at_ns = 0

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        pass

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        self.at_ns = time.perf_counter_ns()
        self.applied.set()

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        pass

    def close(self) -> None:
        pass


def _daemon(sink: Sink, allow: Sequence[str] = ()) -> tuple[HostDaemon, PadWriter]:
    """A daemon wired as host/cli.py wires it, and its pad writer (started by the caller)."""

    def make_link(**kwargs: Any) -> LinkLike:
        return OfflineLink()

    settings = HostSection(sink="null", stale_ms=60_000, allow=list(allow))
    clock = SystemClock()
    faults = Faults(logger=Quiet())
    table = SeatTable(settings.seats, settings.allowed(), stale_s=60.0, idle_s=settings.idle_s)
    writer = PadWriter(table, sink, clock, faults)
    # frames go in faster than any guest sends them: the budget must not drop them
    intake = Intake(rate_hz=1e12, burst=1e12)
    parts = HostParts(writer, sink, make_link, clock, NullNotifier(), intake, faults)
    daemon = HostDaemon(settings, Topics(TOPIC_PREFIX, SESSION), parts, logger=Quiet())
    return daemon, writer


class Timed(NamedTuple):
    us: list[float]  # per call
    wakeups: int  # times the pad writer thread woke during the calls


def _payloads(codec: FrameCodec, epoch: int, n: int) -> list[bytes]:
    """Encoded ahead; ``t`` is restamped per call below only where latency matters."""
    return [
        codec.encode(Input.of(epoch, seq, now_us32(), PadState(seq & 1, seq % 30000, -seq % 30000)))
        for seq in range(1, n + 1)
    ]


def _timed_calls(sink: Sink, topic: str, payloads: list[bytes], allow: Sequence[str] = ()) -> Timed:
    """Microseconds per ``on_message`` call for each payload, writer thread running."""
    daemon, writer = _daemon(sink, allow)
    writer.start(lambda effects: None)
    try:
        clock = time.perf_counter_ns
        out = []
        for payload in payloads:
            t0 = clock()
            daemon.on_message(topic, payload, False)
            out.append((clock() - t0) / 1000)
        return Timed(out, writer.stats().wakeups)
    finally:
        writer.stop()


def call_cost(sink: Sink, n: int, epoch: int) -> Timed:
    """Microseconds per ``on_message`` call, writer thread running."""
    topic = Topics(TOPIC_PREFIX, SESSION).input(USER)
    return _timed_calls(sink, topic, _payloads(FrameCodec(), epoch, n))


def reject_flood_cost(n: int) -> Timed:
    """Microseconds per ``on_message`` for a Ping from a user not allowed, new epoch each."""
    topic = Topics(TOPIC_PREFIX, SESSION).input("mallory")
    codec = FrameCodec()
    payloads = [codec.encode(Ping(epoch, now_us32())) for epoch in range(1, n + 1)]
    return _timed_calls(NullSink(), topic, payloads, allow=["alice"])


def hand_off(n: int, epoch: int) -> Timed:
    """Microseconds from ``on_message`` to the sink's ``apply`` on the writer thread."""
    sink = HandOffSink()
    daemon, writer = _daemon(sink)
    topic = Topics(TOPIC_PREFIX, SESSION).input(USER)
    payloads = _payloads(FrameCodec(), epoch, n)
    writer.start(lambda effects: None)
    try:
        out = []
        for payload in payloads:
            sink.applied.clear()
            t0 = time.perf_counter_ns()
            daemon.on_message(topic, payload, False)
            if not sink.applied.wait(5):
                raise RuntimeError("the pad writer did not apply a frame in 5 s")
            out.append((sink.at_ns - t0) / 1000)
        return Timed(out, writer.stats().wakeups)
    finally:
        writer.stop()


def run(frames: int = 20000) -> dict[str, Any]:
    null = call_cost(NullSink(), frames, epoch=11)
    with tempfile.TemporaryDirectory(prefix="bench-host-") as tmp:
        sink = JsonlSink(Path(tmp) / "pads.jsonl")
        sink.open(2, lambda seat, frame: None)
        try:
            jsonl = call_cost(sink, frames, epoch=12)
        finally:
            sink.close()
    hop = hand_off(min(frames, 5000), epoch=13)
    flood = reject_flood_cost(frames)
    timed = {
        "on_message, null sink (the budget)": null,
        "on_message, jsonl sink": jsonl,
        "on_message -> apply via writer thread": hop,
        "on_message, Ping from a user not allowed": flood,
    }
    rows = {name: summary(t.us) for name, t in timed.items()}
    wakeups = {name: t.wakeups for name, t in timed.items()}
    budget = Budget(
        "host cost per frame",
        "median, null sink",
        rows["on_message, null sink (the budget)"]["p50"],
        BUDGET_US,
        "us",
    )
    print(
        table(
            f"Host cost per applied frame, in-process, {frames} frames (us; decode, checks, "
            "seat table, queue, sink)",
            ["path", "n", "p50 (median)", "p90", "p99", "max", "writer wake-ups"],
            [
                [name, int(s["n"]), s["p50"], s["p90"], s["p99"], s["max"], wakeups[name]]
                for name, s in rows.items()
            ],
        )
    )
    print(f"  median: {budget.value:.1f} us ({budget.limit_text()}) -> {budget.verdict()}")
    result = {
        "frames": frames,
        "us": rows,
        "writer_wakeups": wakeups,
        "budgets": [budget.as_dict()],
    }
    write_json("host_cost", result)
    result["budget_objects"] = [budget]
    return result


if __name__ == "__main__":
    run()
