"""The host under stalls and hostile frames, with real processes (host rules 2, 4 and 9).

- the host process stopped for 5 s while a real guest keeps playing: nothing older
  than ``stale_ms`` reaches the pad, and the first state after the stall is the newest;
- a user who is not allowed changing epoch on every frame: Reject bytes out stay
  below frame bytes in, while the seated player keeps playing;
- one forged frame with ``seq + 2**30`` in the seated epoch: the player keeps the pad;
- a sink whose every write fails: the status says so, the watchdog is no longer fed,
  and the host exits 1 within ``sink_fail_s`` (+ its 1 s status loop).
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

from host.lateness import DRIFT_SPAN_S, DRIFT_US_PER_S
from relay.frames import Button, FrameCodec, Input, PadState, Ping, Reject
from relay.serial32 import now_us32
from relay.topics import Topics
from tests.support.host_process import Line
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient
from tests.support.stack import Stack, StackGuest, StackHost, press_and_see

STALL_S = 5.0
STALE_MS = 250
FLOOD_PINGS = 5000
MAX_GAP_MS = 250  # a seated player's applied inputs while an attack runs beside them
HOST_RSS_BOUND_KB = 10_000  # host memory growth over the Reject flood (the report: +123 MB)
CODEC = FrameCodec()


def _bit(name: str) -> int:
    return 1 << int(Button[name])


def _inputs(lines: list[Line]) -> list[Line]:
    return [x for x in lines if x["reason"] == "input"]


def _largest_gap_ms(lines: list[Line]) -> float:
    stamps = [x["t_ns"] for x in _inputs(lines)]
    return max((b - a for a, b in itertools.pairwise(stamps)), default=0) / 1e6


def _seated(stack: Stack, mosquitto: Mosquitto, **fields: object) -> tuple[StackHost, StackGuest]:
    host = stack.host(mosquitto, **fields)
    host.wait_ready()
    guest = stack.guest(mosquitto, "alice")
    guest.wait_seated()
    press_and_see(guest, host)
    return host, guest


def test_a_host_stopped_for_5s_replays_nothing_and_jumps_to_the_newest_state(
    stack: Stack, mosquitto: Mosquitto
) -> None:
    """SIGSTOP 5 s while the guest presses A, B, X and then holds Y: after SIGCONT only Y."""
    host, guest = _seated(stack, mosquitto, stale_ms=STALE_MS)
    before = _inputs(host.lines())
    best_us = min(x["lat_us"] for x in before)  # same machine: lat_us is the true delay
    mark = len(host.lines())
    assert host.proc is not None
    host.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        for name in ("A", "B", "X", "A", "B", "X"):  # presses and releases, all stale later
            guest.send(press=name)
            time.sleep(0.3)  # the stall is the scenario: the guest plays on meanwhile
            guest.send(release=name)
            time.sleep(0.3)
        guest.send(press="Y")  # the state to land on
        time.sleep(max(0.0, STALL_S - (time.monotonic() - started)))
    finally:
        host.proc.send_signal(signal.SIGCONT)
    resumed_ns = time.monotonic_ns()
    host.wait_lines("input", after=mark, buttons=_bit("Y"))
    after = _inputs(host.lines()[mark:])
    # rule 9 measures from the best delay (<= best_us, which is stamped later, at the sink);
    # the drift it allows adds at most DRIFT_US_PER_S * DRIFT_SPAN_S across the stall
    limit_us = STALE_MS * 1000 + best_us + DRIFT_US_PER_S * DRIFT_SPAN_S
    assert all(x["lat_us"] <= limit_us for x in after), [x["lat_us"] for x in after][:5]
    assert after[0]["buttons"] == _bit("Y"), "the first state after the stall is the newest"
    assert all(x["buttons"] == _bit("Y") for x in after)
    assert after[0]["t_ns"] >= resumed_ns - 1_000_000_000  # (sanity: it is from after SIGCONT)
    guest.send(release="Y")
    press_and_see(guest, host, "B")
    host.stop()
    drops = host.wait_log("host_stopped")["drops"]
    assert drops.get("late", 0) > 0


def test_a_reject_flood_costs_fewer_bytes_out_than_in_and_the_player_plays_on(
    stack: Stack, mosquitto: Mosquitto
) -> None:
    """bob (not allowed) sends 5000 Pings, a new epoch each; alice keeps playing."""
    host, guest = _seated(stack, mosquitto, allow=["alice"], status_interval_s=0.5)
    topics = Topics(stack.prefix, "s1")
    bob = RawClient(mosquitto.port, "bob", mosquitto.passwords["bob"])
    try:
        bob.wait_connected()
        bob.subscribe(topics.output("bob"))
        quiet = _latencies(host, guest, 1.0)
        mark = len(host.lines())
        rss_before = _rss_kb(host)
        bytes_in = 0
        playing = threading.Thread(target=_play, args=(guest, 2.0), daemon=True)
        playing.start()
        for i in range(FLOOD_PINGS):
            payload = CODEC.encode(Ping(i + 1, now_us32()))
            bytes_in += len(payload)
            bob.client.publish(topics.input("bob"), payload, 0)
            if i % 500 == 499:
                time.sleep(0.2)  # spread over ~2 s, beside the player
        playing.join(10)
        ping = Ping(0xFFFFFFFF, 0)  # QoS 1 after the flood: the broker has passed it all on
        bob.publish(topics.input("bob"), CODEC.encode(ping), 1)
        host.wait_drops("not_allowed", FLOOD_PINGS)
        logged = len(host.log_lines("guest_rejected"))
        bob.inbox.wait_count(logged)
        during = [x["lat_us"] for x in _inputs(host.lines()[mark:])]
        gap_ms = _largest_gap_ms(host.lines()[mark:])
        rejects = [m for m in bob.inbox.snapshot() if isinstance(CODEC.decode(m.payload), Reject)]
        bytes_out = sum(len(m.payload) for m in rejects)
        grown_kb = _rss_kb(host) - rss_before
    finally:
        bob.close()
    print(
        f"reject flood: {FLOOD_PINGS} Pings, {bytes_in} B in, {len(rejects)} Rejects, "
        f"{bytes_out} B out; player p99 {_p99_ms(quiet):.2f} ms quiet, "
        f"{_p99_ms(during):.2f} ms during; largest gap {gap_ms:.0f} ms; host RSS +{grown_kb} kB"
    )
    assert grown_kb < HOST_RSS_BOUND_KB
    assert len(rejects) >= 1 and bytes_out <= bytes_in
    assert logged == len(rejects)
    assert gap_ms <= MAX_GAP_MS
    assert all(x["user"] == "alice" for x in _inputs(host.lines()))


def test_one_forged_seq_jump_does_not_lock_the_player_out(
    stack: Stack, mosquitto: Mosquitto
) -> None:
    """An Input in alice's epoch with seq + 2**30 (holding X) is dropped; alice plays on."""
    host, guest = _seated(stack, mosquitto)
    last = _inputs(host.lines())[-1]
    seq = (last["seq"] + (1 << 30)) % (1 << 32)
    forged = Input.of(last["epoch"], seq, now_us32(), PadState(_bit("X")))
    forger = RawClient(mosquitto.port, "alice", mosquitto.passwords["alice"])
    try:
        forger.wait_connected()
        forger.publish(Topics(stack.prefix, "s1").input("alice"), CODEC.encode(forged), 1)
    finally:
        forger.close()
    mark = len(host.lines())
    for name in ("B", "Y", "A"):
        press_and_see(guest, host, name)
    assert not any(x["buttons"] & _bit("X") for x in host.lines())
    gap_ms = _largest_gap_ms(host.lines()[mark:])
    assert gap_ms <= MAX_GAP_MS


def test_a_sink_failing_every_write_shows_in_status_stops_the_watchdog_and_exits_1(
    stack: Stack, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """jsonl:/dev/full (a full disk): status says so, WATCHDOG=1 stops, exit 1 in time."""
    fail_s = 2.0
    path = str(tmp_path / "notify")
    got: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(0.2)
        done = threading.Event()

        def read_notify() -> None:  # drained all along, as systemd does (the queue is short)
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    got.append(server.recv(4096).decode())

        reader = threading.Thread(target=read_notify, daemon=True)
        reader.start()
        try:
            host = stack.host(
                mosquitto,
                sink="jsonl:/dev/full",
                status_interval_s=0.3,
                host_extra=f"sink_fail_s = {fail_s}\n",
                extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"},
            )
            host.wait_ready()
            guest = stack.guest(mosquitto, "alice")
            guest.wait_seated()
            failing = host.wait_log("sink_failing")
            assert failing["error"]
            status = host.wait_log("host_status", lambda x: "sink failing" in x.get("status", ""))
            assert "No space left" in status["status"]
            assert host.proc is not None
            code = host.proc.wait(fail_s + 10)
        finally:
            time.sleep(0.3)  # the last datagrams
            done.set()
            reader.join(2)
    assert code == 1
    assert "every pad write failed" in host.stderr_text()
    first_bad = next(i for i, m in enumerate(got) if "sink failing" in m)
    assert "WATCHDOG=1" in got[:first_bad]
    assert "WATCHDOG=1" not in got[first_bad:]


# ------------------------------------------------------------------ helpers


def _play(guest: StackGuest, seconds: float) -> None:
    """Press and release A every 50 ms for ``seconds`` (a player busy beside an attack)."""
    deadline = time.monotonic() + seconds
    down = False
    while time.monotonic() < deadline:
        guest.send(**({"release": "A"} if down else {"press": "A"}))
        down = not down
        time.sleep(0.05)
    if down:
        guest.send(release="A")


def _latencies(host: StackHost, guest: StackGuest, seconds: float) -> list[int]:
    mark = len(host.lines())
    _play(guest, seconds)
    return [x["lat_us"] for x in _inputs(host.lines()[mark:])]


def _rss_kb(host: StackHost) -> int:
    assert host.proc is not None
    for line in Path(f"/proc/{host.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _p99_ms(values: list[int]) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100)[98] / 1000
