"""``make bench`` = ``python -m tests.bench [--quick] [--only NAME ...]``: every benchmark, one run.

Starts its own Mosquitto and its own relay (embedded broker + token API) on
free loopback ports, runs the benchmarks below, prints a table per benchmark
and one combined table with each DESIGN budget ("budget: met" or "MISSED by
X"), writes JSON per benchmark and ``summary.json`` to ``tests/bench/results/``,
and stops every process it started. A missed budget is reported, never
asserted; the exit code is 1 only when a benchmark could not run.

- ``latency_mosquitto``  guest -> host sink at 120 Hz via Mosquitto, beside bare paho:
                         from the send stamp and from the pad change, steady and
                         after 2 s of rest, also with the pad polled (``pad_wake = false``)
- ``freeze``             SIGSTOP'd guest -> pad neutral, 20 freezes (via Mosquitto)
- ``latency_embedded``   the same latencies via the embedded broker, token flow
- ``broker``             each broker's CPU per message (bare paho, 500 Hz), and the
                         embedded broker's time by code under cProfile (coplay vs amqtt)
- ``host_cost``          per-frame cost of the host's message path, in-process
- ``guest_cpu``          guest CPU with an idle pad at 60 Hz, as a ratio to a bare paho
                         publisher at the same rate (also with the pad polled)
- ``bytes``              bytes per Input frame against JSON
- ``browser``            pad change -> host sink, browser guest (headless Chromium) beside
                         the Python guest, through the embedded broker (own relay)
- ``cluster``            latency via a 3-node NATS cluster beside Mosquitto and the embedded
                         broker, and the 120 Hz guests one NATS node carries (bench_cluster)

At the end it prints the README's Performance block (``tests.bench.readme``):
the latency table and the budgets, with the date, the machine (``lscpu``) and
the load, and a warning when the machine was busy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench import (
    bench_broker,
    bench_browser,
    bench_bytes,
    bench_cluster,
    bench_freeze,
    bench_guest_cpu,
    bench_host_cost,
    bench_latency,
    readme,
)
from tests.bench.budget import SUMMARY_HEADER, Budget
from tests.bench.rig import EmbeddedRig, MosquittoRig
from tests.bench.stats import RESULTS, machine, table, write_json
from tests.support.mosquitto import Mosquitto
from tests.support.relay_service import RelayService

BENCHES = (
    "latency_mosquitto",
    "freeze",
    "latency_embedded",
    "broker",
    "host_cost",
    "guest_cpu",
    "bytes",
    "browser",
    "cluster",
)


@dataclass(frozen=True)
class Plan:
    latency_s: float
    rest_samples: int
    freezes: int
    guest_cpu_s: float
    guest_cpu_warmup_s: float
    host_frames: int
    broker_s: float

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                latency_s=3,
                rest_samples=3,
                freezes=5,
                guest_cpu_s=3,
                guest_cpu_warmup_s=1,
                host_frames=3000,
                broker_s=2,
            )
        return cls(
            latency_s=10,
            rest_samples=10,
            freezes=20,
            guest_cpu_s=10,
            guest_cpu_warmup_s=2,
            host_frames=20000,
            broker_s=5,
        )


@contextmanager
def mosquitto(workdir: Path) -> Iterator[MosquittoRig]:
    broker = Mosquitto(workdir)
    broker.prepare()
    broker.start()
    try:
        yield MosquittoRig(broker)
    finally:
        broker.stop()


@contextmanager
def embedded(workdir: Path) -> Iterator[EmbeddedRig]:
    relay = RelayService(workdir)
    relay.start()
    try:
        yield EmbeddedRig(relay)
    finally:
        try:
            relay.stop()
        finally:
            relay.kill()


def guest_cpu(plan: Plan) -> dict[str, Any]:
    """``bench_guest_cpu.run`` with its table and a Budget."""
    result = bench_guest_cpu.run(plan.guest_cpu_s, plan.guest_cpu_warmup_s)
    bare = result["bare_paho_publisher"]
    budget = Budget(
        "guest CPU, idle pad",
        f"CPU at {result['rate_hz']} Hz / bare paho publisher's "
        f"({result['cpu_percent']:.2f} % vs {bare['cpu_percent']:.2f} % of a core)",
        result["ratio_to_bare"],
        result["budget_ratio"],
        "x",
    )
    print(
        table(
            f"Guest CPU, idle virtual pad, {result['rate_hz']} Hz keyframes via Mosquitto "
            f"({result['seconds']} s window each, one after the other)",
            ["process", "seconds", "frames/s", "CPU s", "CPU % of one core"],
            bench_guest_cpu.rows(result),
        )
    )
    print(f"  {budget.measure}: {budget.value:.2f} x ({budget.limit_text()}) -> {budget.verdict()}")
    write_json("guest_cpu", {"guest_cpu": result, "budgets": [budget.as_dict()]})
    return {**result, "budget_objects": [budget]}


def info_rows(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Numbers without a budget of their own, for the combined table."""
    rows: list[list[Any]] = []
    for name in ("latency_mosquitto", "latency_embedded"):
        r = results.get(name)
        if not r:
            continue
        figures = [
            ("bare paho", r["bare_paho_us"]),
            ("send stamp -> sink", r["coplay_us"]),
            ("pad change -> sink", r["pad_change_us"]),
            ("pad change -> sink after rest", r["pad_change_rest_us"]),
        ]
        if r.get("polled"):
            figures += [
                ("pad change -> sink, polled pad", r["polled"]["pad_change_us"]),
                ("pad change -> sink after rest, polled pad", r["polled"]["pad_change_rest_us"]),
            ]
        for what, s in figures:
            rows.append(
                [
                    f"latency via {r['broker']}",
                    f"{what}: p50 / p99 / p99.9 / max",
                    _ms(s["p50"], s["p99"], s["p99.9"], s["max"]) + f" (n={int(s['n'])})",
                    "-",
                    "info",
                ]
            )
    r = results.get("broker")
    if r:
        m, e = r["mosquitto"], r["embedded"]
        split = r["profile_split_percent"]
        rows.append(
            [
                "broker CPU per message",
                "bare paho at 500 Hz: Mosquitto vs embedded",
                f"{m['broker_cpu_us_per_message']:.0f} us vs {e['broker_cpu_us_per_message']:.0f}"
                f" us; embedded busy time: coplay {split.get('coplay (relay.*)', 0):g} %, amqtt "
                f"{split.get('amqtt', 0):g} %, asyncio {split.get('asyncio', 0):g} %",
                "-",
                "info",
            ]
        )
    r = results.get("browser")
    if r:
        for name, label in (("python_tcp", "Python/TCP"), ("python_ws", "Python/WS"),
                            ("browser_ws", "browser/WS")):  # fmt: skip
            c = r[name]["pad_change_us"]
            value = _ms(c["p50"], c["p99"], c["max"]) + f" (n={int(c['n'])})"
            rows.append(["pad change -> sink, embedded", f"p50 / p99 / max, {label}", value,
                         "-", "info"])  # fmt: skip
    r = results.get("bytes")
    if r:
        rows.append(
            [
                "bytes per Input frame",
                "mean msgpack vs JSON",
                f"{r['msgpack_mean']:.1f} B vs {r['json_mean']:.1f} B "
                f"({r['json_mean'] / r['msgpack_mean']:.1f}x smaller)",
                "-",
                "info",
            ]
        )
    return rows


def _ms(*values_us: float) -> str:
    return " / ".join(f"{v / 1000:.3f}" for v in values_us) + " ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke run)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHES,
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHES)}",
    )
    args = parser.parse_args(argv)
    plan = Plan.of(args.quick)
    chosen = set(args.only or BENCHES)
    started = time.monotonic()
    about = {**machine(), "lscpu_model": readme.lscpu_model()}
    print(
        f"coplay benchmark, {about['date']}, {about['cpu']} x{about['cores']}, "
        f"Python {about['python']}, Linux {about['kernel']}"
        f"{' (quick)' if args.quick else ''}\n"
    )

    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    loads: dict[str, tuple[float, float]] = {}  # 1-minute load average before and after

    def attempt(name: str, bench: Callable[[], dict[str, Any]]) -> None:
        if name not in chosen:
            return
        t0, load0 = time.monotonic(), os.getloadavg()[0]
        try:
            results[name] = bench()
        except Exception as exc:
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: COULD NOT RUN: {failed[name]}")
        load1 = os.getloadavg()[0]
        loads[name] = (load0, load1)
        print(
            f"  ({name}: {time.monotonic() - t0:.1f} s; load average {load0:.2f} -> {load1:.2f})\n"
        )

    with tempfile.TemporaryDirectory(prefix="coplay-bench-") as tmp:
        work = Path(tmp)
        if chosen & {"latency_mosquitto", "freeze"}:
            with mosquitto(work / "mosquitto") as rig:
                attempt(
                    "latency_mosquitto",
                    lambda: bench_latency.run(
                        rig, work / "lat-mosquitto", plan.latency_s, plan.rest_samples, polled=True
                    ),
                )
                attempt("freeze", lambda: bench_freeze.run(rig, work / "freeze", plan.freezes))
        if "latency_embedded" in chosen:
            with embedded(work / "relay") as relay:
                attempt(
                    "latency_embedded",
                    lambda: bench_latency.run(
                        relay, work / "lat-embedded", plan.latency_s, plan.rest_samples
                    ),
                )
        attempt("broker", lambda: bench_broker.run(work / "broker", plan.broker_s))
        attempt("host_cost", lambda: bench_host_cost.run(plan.host_frames))
        attempt("guest_cpu", lambda: guest_cpu(plan))
        attempt("bytes", bench_bytes.run)
        attempt("browser", lambda: bench_browser.run(work / "browser", plan.latency_s))
        attempt("cluster", lambda: bench_cluster.run(work / "cluster", plan.latency_s))

    budgets: list[Budget] = [b for r in results.values() for b in r.pop("budget_objects", [])]
    rows = [b.row() for b in budgets] + info_rows(results)
    rows += [[name, "-", "-", "-", f"COULD NOT RUN: {why}"] for name, why in failed.items()]
    elapsed = time.monotonic() - started
    print(
        table(
            f"coplay benchmark summary ({about['date']}, {about['cpu']} x{about['cores']}, "
            f"{elapsed:.0f} s{', quick' if args.quick else ''})",
            SUMMARY_HEADER,
            rows,
        )
    )
    met = sum(1 for b in budgets if b.met)
    print(f"budgets met: {met} of {len(budgets)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "machine": about,
        "quick": args.quick,
        "plan": plan.__dict__,
        "elapsed_s": round(elapsed, 1),
        "budgets": [b.as_dict() for b in budgets],
        "failed": failed,
        "load_average": loads,
        "results": results,
    }
    path = RESULTS / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"wrote {path} (and one JSON per benchmark beside it)")
    print(f"\nFor README.md's Performance section (also in {readme.write(summary)}):\n")
    print(readme.render(summary), end="")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
