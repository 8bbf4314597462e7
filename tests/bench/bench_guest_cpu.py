"""Guest CPU with an idle pad: a real ``coplay-guest`` at 60 Hz through Mosquitto.

The guest runs as its own process with ``--source virtual`` and a script that
does nothing (``COPLAY_VIRTUAL_SCRIPT=-``, no commands), so it sends keyframes
only. CPU is read from ``/proc/<pid>/stat`` (utime + stime) over the window,
after a warm-up, and given as % of one core. A raw subscriber counts the frames
that arrived, to show the guest was really sending. DESIGN budget: <= 2 %.

For scale, the same window is measured on the bare paho publisher
(``tests/bench/paho_pub.py``: a loop that only sleeps and publishes at 60 Hz),
the floor for any paho-based sender at this rate on this machine.

Run: ``.venv/bin/python -m tests.bench.bench_guest_cpu [SECONDS]``
"""

from __future__ import annotations

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

BUDGET_PERCENT = 2.0
RATE_HZ = 60


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
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
    return {"cpu_seconds": round(cpu, 3), "cpu_percent": round(100 * cpu / wall, 3)}


def run(seconds: float = 10.0, warmup: float = 2.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-guest-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        broker.prepare()
        broker.start()
        host = RawClient(broker.port, "streamer", broker.passwords["streamer"])
        guest = None
        try:
            host.wait_connected()
            host.subscribe("bench/s1/in/alice")
            config = write_guest_config(work / "guest.toml", broker, "bench", rate_hz=RATE_HZ)
            guest = GuestProcess(config, broker.passwords["alice"], work)
            host.inbox.wait_count(5, timeout=20)
            time.sleep(warmup)
            n0 = len(host.inbox.snapshot())
            cpu, wall = measure(guest.pid, seconds)
            n1 = len(host.inbox.snapshot())
            frames = decoded(host.inbox.snapshot()[n0:n1])
            guest.close()
            bare = baseline(broker, seconds, warmup)
        finally:
            if guest is not None:
                guest.close()
            host.close()
            broker.stop()
    inputs = sum(1 for f in frames if isinstance(f, Input))
    return {
        "rate_hz": RATE_HZ,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "cpu_percent": round(100 * cpu / wall, 3),
        "frames_per_s": round(inputs / wall, 2),
        "budget_percent": BUDGET_PERCENT,
        "bare_paho_publisher": bare,
        "clock_tick_s": 1 / os.sysconf("SC_CLK_TCK"),
    }


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    result = run(seconds)
    ok = result["cpu_percent"] <= BUDGET_PERCENT
    print(
        table(
            f"Guest CPU, idle virtual pad, {RATE_HZ} Hz keyframes via Mosquitto",
            ["process", "seconds", "frames/s", "CPU s", "CPU % of one core", "budget %", "within"],
            [
                [
                    "coplay-guest",
                    result["seconds"],
                    result["frames_per_s"],
                    result["cpu_seconds"],
                    result["cpu_percent"],
                    BUDGET_PERCENT,
                    "yes" if ok else "NO",
                ],
                [
                    "bare paho publisher",
                    result["seconds"],
                    float(RATE_HZ),
                    result["bare_paho_publisher"]["cpu_seconds"],
                    result["bare_paho_publisher"]["cpu_percent"],
                    "-",
                    "-",
                ],
            ],
        )
    )
    path = write_json("guest_cpu", {"guest_cpu": result, "within_budget": ok})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
