"""Guest CPU with an idle pad: a real ``coplay-guest`` at 60 Hz through Mosquitto.

The guest runs as its own process with ``--source virtual`` and a script that
does nothing (``COPLAY_VIRTUAL_SCRIPT=-``, no commands), so it sends keyframes
only. CPU is read from ``/proc/<pid>/task/*/schedstat`` over the window,
after a warm-up, and given as % of one core. A raw subscriber counts the frames
that arrived, to show the guest was really sending.

The same window is measured, in the same run, on the bare paho publisher
(``tests/bench/paho_pub.py``: a loop that only sleeps and publishes at 60 Hz),
the floor for any paho-based sender at this rate on this machine. DESIGN
budget: the guest's CPU <= 1.3x that floor. For comparison the guest is also
measured with ``pad_wake = false`` (the idle pad polled about every 8 ms).

Run: ``.venv/bin/python -m tests.bench.bench_guest_cpu [SECONDS]``
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from relay.frames import Input
from tests.bench.stats import table, write_json
from tests.support.guest_proc import GuestProcess, decoded, write_guest_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient

BUDGET_RATIO = 1.3
RATE_HZ = 60


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's threads, in seconds (nanosecond schedstat where there is one).

    ``/proc/PID/task/*/schedstat`` counts to the nanosecond; utime + stime in
    ``stat`` only in clock ticks (10 ms), too coarse for a process using 2 % of
    a core over a few seconds. Every thread of the processes measured here lives
    for the whole window.
    """
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                text = Path(f"/proc/{pid}/task/{task}/schedstat").read_text()
                total_ns += int(text.split()[0])
        return total_ns / 1e9
    except (OSError, ValueError, IndexError):
        pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(pid: int, seconds: float) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``pid`` over the next ``seconds``."""
    c0, w0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return cpu_seconds(pid) - c0, time.monotonic() - w0


def baseline(broker: Mosquitto, seconds: float, warmup: float) -> dict[str, Any]:
    """The bare paho publisher at the same rate, measured the same way."""
    env = {**os.environ, "BENCH_MQTT_PASSWORD": broker.passwords["alice"]}
    argv = [sys.executable, "-m", "tests.bench.paho_pub", str(broker.port), "alice",
            "bench/s1/in/alice", str(RATE_HZ), str(seconds + warmup + 2)]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        time.sleep(warmup + 0.5)
        cpu, wall = measure(proc.pid, seconds)
    finally:
        proc.kill()
        proc.wait(5)
    return {"cpu_seconds": round(cpu, 4), "cpu_percent": round(100 * cpu / wall, 3)}


def _guest(
    broker: Mosquitto, host: RawClient, work: Path, seconds: float, warmup: float, extra: str
) -> dict[str, Any]:
    """One idle guest process: its CPU over the window, and the frames that arrived meanwhile."""
    config = write_guest_config(work / "guest.toml", broker, "bench", rate_hz=RATE_HZ, extra=extra)
    n_start = len(host.inbox.snapshot())
    guest = GuestProcess(config, broker.passwords["alice"], work)
    try:
        host.inbox.wait_count(n_start + 5, timeout=20)
        time.sleep(warmup)  # the warm-up is the point: nothing to await
        n0 = len(host.inbox.snapshot())
        cpu, wall = measure(guest.pid, seconds)
        n1 = len(host.inbox.snapshot())
    finally:
        guest.close()
    frames = decoded(host.inbox.snapshot()[n0:n1])
    inputs = sum(1 for f in frames if isinstance(f, Input))
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 4),
        "cpu_percent": round(100 * cpu / wall, 3),
        "frames_per_s": round(inputs / wall, 2),
    }


def run(seconds: float = 10.0, warmup: float = 2.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-guest-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        broker.prepare()
        broker.start()
        host = RawClient(broker.port, "streamer", broker.passwords["streamer"])
        try:
            host.wait_connected()
            host.subscribe("bench/s1/in/alice")
            ours = _guest(broker, host, work, seconds, warmup, "")
            polled = _guest(broker, host, work, seconds, warmup, "pad_wake = false\n")
            bare = baseline(broker, seconds, warmup)
        finally:
            host.close()
            broker.stop()
    ratio = ours["cpu_percent"] / bare["cpu_percent"] if bare["cpu_percent"] else float("nan")
    return {
        "rate_hz": RATE_HZ,
        **ours,
        "ratio_to_bare": round(ratio, 3),
        "budget_ratio": BUDGET_RATIO,
        "polled_pad": polled,
        "bare_paho_publisher": bare,
    }


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    result = run(seconds)
    print(
        table(
            f"Guest CPU, idle virtual pad, {RATE_HZ} Hz keyframes via Mosquitto",
            ["process", "seconds", "frames/s", "CPU s", "CPU % of one core"],
            rows(result),
        )
    )
    print(f"  ratio to bare paho: {result['ratio_to_bare']:.2f}x (budget <= {BUDGET_RATIO}x)")
    path = write_json("guest_cpu", {"guest_cpu": result})
    print(f"wrote {path}")
    return 0


def rows(result: dict[str, Any]) -> list[list[Any]]:
    bare, polled = result["bare_paho_publisher"], result["polled_pad"]
    return [
        [
            "coplay-guest (wakes on the pad)",
            result["seconds"],
            result["frames_per_s"],
            result["cpu_seconds"],
            result["cpu_percent"],
        ],
        [
            "coplay-guest, pad_wake = false (polled)",
            polled["seconds"],
            polled["frames_per_s"],
            polled["cpu_seconds"],
            polled["cpu_percent"],
        ],
        [
            "bare paho publisher (floor)",
            result["seconds"],
            float(result["rate_hz"]),
            bare["cpu_seconds"],
            bare["cpu_percent"],
        ],
    ]


if __name__ == "__main__":
    sys.exit(main())
