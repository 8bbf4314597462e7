"""The embedded broker's cost per message: CPU per message beside Mosquitto's, and where it goes.

Three measurements, each a bare paho publisher process at ``RATE_HZ`` through a
broker to a paho subscriber (``tests.bench.baseline``, user tokens and the ACL
as in production):

1. broker CPU per message, read from ``/proc/PID/task/*/schedstat`` over the
   run, for Mosquitto and for ``coplay-relay serve`` (token API idle);
2. the same relay again under ``cProfile`` (``python -m cProfile``), whose
   statistics split the broker's busy time (start-up and waiting left out) by
   module: coplay's own hooks (``relay.*``: the JWT/ACL plugins, topic
   matching, the broker fixes), amqtt, asyncio and the rest. A deterministic
   profiler inflates Python calls, so the split is a proportion, not a time;
   the per-message CPU of step 1 is the number to compare.

Run: ``.venv/bin/python -m tests.bench.bench_broker [SECONDS]``
"""

from __future__ import annotations

import pstats
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.baseline import bare_paho_latency
from tests.bench.bench_guest_cpu import cpu_seconds
from tests.bench.rig import EmbeddedRig, MosquittoRig, Rig
from tests.bench.stats import summary, table, write_json
from tests.support.mosquitto import Mosquitto
from tests.support.relay_service import RelayService

RATE_HZ = 500  # enough messages for a profile in a few seconds, far below saturation


@dataclass
class ProfiledRelay(RelayService):
    """``coplay-relay serve`` under cProfile; the statistics are written when it stops."""

    profile_path: Path = Path("relay.prof")

    def command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(self.profile_path),
            "-m",
            "relay.cli",
            *extra,
            "--config",
            str(self.config_path),
        ]


def _through(rig: Rig, pid: int, seconds: float) -> dict[str, Any]:
    """Bare paho at RATE_HZ through ``rig``: the broker's CPU per message and the latency."""
    pub, sub = rig.logins()
    c0 = cpu_seconds(pid)
    lats = bare_paho_latency(rig.port, pub, sub, rig.place().prefix, RATE_HZ, seconds)
    cpu = cpu_seconds(pid) - c0
    return {
        "messages": len(lats),
        "broker_cpu_s": round(cpu, 4),
        "broker_cpu_us_per_message": round(1e6 * cpu / max(1, len(lats)), 1),
        "latency_us": summary(lats),
    }


def _split(profile: Path) -> dict[str, float]:
    """Share of the profiled broker's own time (tottime) by where the code lives."""
    stats: Any = pstats.Stats(str(profile))
    groups: dict[str, float] = {}
    for (filename, _line, name), row in stats.stats.items():
        groups[_group(filename, name)] = groups.get(_group(filename, name), 0.0) + row[2]
    waited = groups.pop("waiting (select/epoll)", 0.0)
    startup = groups.pop("start-up (imports)", 0.0)
    total = sum(groups.values()) or 1.0
    shares = {k: round(100 * v / total, 1) for k, v in sorted(groups.items(), key=lambda x: -x[1])}
    return {
        **shares,
        "_busy_s": round(total, 3),
        "_waiting_s": round(waited, 3),
        "_startup_s": round(startup, 3),
    }


_NOT_PER_MESSAGE = ("waiting (select/epoll)", "start-up (imports)")


def _group(filename: str, name: str) -> str:
    if "select" in name and ("poll" in name or "select" in filename or name.endswith("select}")):
        return "waiting (select/epoll)"
    if "importlib" in filename or name in (
        "<built-in method builtins.compile>",
        "<built-in method builtins.exec>",
        "<built-in method marshal.loads>",
        "<built-in method builtins.__build_class__>",
        "<built-in method _imp.create_dynamic>",
        "<built-in method posix.stat>",
    ):
        return "start-up (imports)"
    if "/relay/" in filename:
        return "coplay (relay.*)"
    if "/amqtt/" in filename:
        return "amqtt"
    if "/asyncio/" in filename or "_asyncio" in name or "uvloop" in filename:
        return "asyncio"
    if "/transitions/" in filename:
        return "transitions (amqtt's state machine)"
    if "/logging/" in filename or "/structlog/" in filename:
        return "logging"
    if filename == "~":
        return "C built-ins (sockets, dict, str...)"
    return "other Python (stdlib, uvicorn, ...)"


def _top(profile: Path, where: str = "", n: int = 8) -> list[dict[str, Any]]:
    """The busiest functions of the broker's profile (own time; in files matching ``where``)."""
    stats: Any = pstats.Stats(str(profile))
    rows = []
    for (filename, _line, name), (_cc, calls, own, _cum, _callers) in stats.stats.items():
        if where in filename and _group(filename, name) not in _NOT_PER_MESSAGE:
            label = f"{Path(filename).name}:{name}" if filename != "~" else name
            rows.append({"function": label, "calls": calls, "tottime_s": round(own, 4)})
    rows.sort(key=lambda r: -r["tottime_s"])
    return rows[:n]


def run(workdir: Path, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"rate_hz": RATE_HZ, "seconds": seconds}
    broker = Mosquitto(workdir / "mosquitto")
    broker.prepare()
    broker.start()
    try:
        pid = _pid_of(broker)
        result["mosquitto"] = _through(MosquittoRig(broker), pid, seconds)
    finally:
        broker.stop()
    relay = RelayService(workdir / "relay")
    _with_relay(relay, lambda: result.__setitem__("embedded", _measure(relay, seconds)))
    profile = workdir / "relay.prof"
    profiled = ProfiledRelay(workdir / "relay-profiled", profile_path=profile)
    _with_relay(profiled, lambda: result.__setitem__("profiled", _measure(profiled, seconds)))
    result["profile_split_percent"] = _split(profile)
    result["profile_coplay_functions"] = _top(profile, "/relay/")
    result["profile_top_functions"] = _top(profile, n=20)
    print(_table(result))
    write_json("broker", result)
    return result


def _measure(relay: RelayService, seconds: float) -> dict[str, Any]:
    assert relay.proc is not None
    return _through(EmbeddedRig(relay), relay.proc.pid, seconds)


def _with_relay(relay: RelayService, body: Callable[[], None]) -> None:
    relay.start()
    try:
        body()
    finally:
        try:
            relay.stop()
        finally:
            relay.kill()


def _pid_of(broker: Mosquitto) -> int:
    if broker.proc is None:
        raise RuntimeError("Mosquitto is not running")
    return broker.proc.pid


def _table(r: dict[str, Any]) -> str:
    rows = []
    for name, key in (("Mosquitto", "mosquitto"), ("embedded (amqtt + coplay hooks)", "embedded")):
        m = r[key]
        lat = m["latency_us"]
        rows.append(
            [
                name,
                m["messages"],
                m["broker_cpu_us_per_message"],
                lat["p50"] / 1000,
                lat["p99"] / 1000,
            ]
        )
    split = r["profile_split_percent"]
    shares = ", ".join(f"{k} {v:g} %" for k, v in split.items() if not k.startswith("_"))
    ours = ", ".join(f"{f['function']} {f['calls']}x" for f in r["profile_coplay_functions"][:4])
    return (
        table(
            f"Broker cost per message, bare paho at {r['rate_hz']} Hz for {r['seconds']:g} s",
            ["broker", "messages", "broker CPU us/message", "p50 ms", "p99 ms"],
            rows,
        )
        + f"\n  embedded broker's busy time under cProfile, by code: {shares}"
        + f"\n  coplay's busiest functions there: {ours}"
        + "\n  busiest overall: "
        + ", ".join(f"{f['function']} {f['tottime_s']:g} s" for f in r["profile_top_functions"][:8])
    )


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        run(Path(tmp), seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
