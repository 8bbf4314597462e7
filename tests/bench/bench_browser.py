"""Pad change -> host sink: the browser guest beside the Python guest, through the embedded broker.

One relay (token API + embedded broker with its WebSocket listener) and one
``coplay-host`` (jsonl sink), then, one after the other, at 120 changes a second:

1. ``coplay-guest --source virtual`` over MQTT/TCP (the bench writes each state
   to the guest's stdin; the pad-change moment is just before that write);
2. the same Python guest over MQTT/WebSocket (``ws://.../mqtt``), to show what
   the transport alone costs;
3. the browser guest in Debian's headless Chromium over MQTT/WebSocket, opened
   with a real join link; a script in the page changes the gamepad double's
   state on the same schedule and stamps each change (``performance.timeOrigin +
   performance.now()``), which the page's own polling then picks up.

Every state is unique, so each host sink line is matched to the change that
made it: latency = the sink line's ``t_ns`` (host CLOCK_MONOTONIC) minus the
change's moment on the same clock. The page's stamps are wall-clock
milliseconds; they are moved onto CLOCK_MONOTONIC with the realtime - monotonic
offset read here and the page's own skew against ``Date.now()`` (averaged over
many samples, so well under 0.1 ms). DESIGN asks only that the browser's p50
be reported beside the Python guest's in the same run: no budget.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from tests.bench.drive import pad_state
from tests.bench.stats import summary, table, write_json
from tests.support.browser import Browser
from tests.support.host_process import Line
from tests.support.stack import Ledger, Stack, StackGuest, StackHost, guest_config

RATE_HZ = 120
SESSION = "bench"
TAIL_S = 0.3  # let the last frames land

# In the page: change the pad double's state n times at rate_hz, stamping each change.
PAGE_DRIVE = r"""
const [n, rate, states] = arguments;
window.__drive = {done: false, stamps: []};
const period = 1000 / rate;
const t0 = performance.now() + 20;
let i = 0;
function step() {
  if (performance.now() >= t0 + i * period) {
    const s = states[i];
    window.__pad.set(s.a ? [0] : [], [s.x, s.y, 0, 0]);
    window.__drive.stamps.push(performance.timeOrigin + performance.now());
    i++;
  }
  if (i < n) setTimeout(step, Math.max(0, t0 + i * period - performance.now()));
  else window.__drive.done = true;
}
step();
"""

# The page's wall clock against Date.now() (CLOCK_REALTIME, whole ms): mean skew in ms.
PAGE_SKEW = r"""
let sum = 0, k = 0;
const end = performance.now() + 200;
while (performance.now() < end) {
  sum += Date.now() - (performance.timeOrigin + performance.now());
  k++;
}
return sum / k + 0.5;
"""


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, the tightest of a few reads."""
    best: tuple[int, int] | None = None
    for _ in range(50):
        a = time.monotonic_ns()
        wall = time.time_ns()
        b = time.monotonic_ns()
        if best is None or b - a < best[0]:
            best = (b - a, wall - (a + b) // 2)
    assert best is not None
    return best[1]


def key(buttons: int, lx: int, ly: int) -> tuple[int, int, int]:
    return (buttons, lx, ly)


def latencies(lines: list[Line], changes: dict[tuple[int, int, int], int]) -> list[float]:
    """Microseconds from each change to the first sink line showing its state."""
    out = []
    seen: set[tuple[int, int, int]] = set()
    for line in lines:
        if line.get("reason") != "input":
            continue
        k = key(line["buttons"], line["axes"][0], line["axes"][1])
        if k in changes and k not in seen:
            seen.add(k)
            out.append((line["t_ns"] - changes[k]) / 1000)
    return out


def python_guest(
    stack: Stack, host: StackHost, user: str, count: int, websocket: bool
) -> dict[str, Any]:
    relay = stack.relays[0]
    workdir = stack.dir / f"bench-{user}"
    workdir.mkdir()
    config = guest_config(
        workdir / "guest.toml", relay, user=user, prefix=stack.prefix_for(relay), session=SESSION
    )
    if websocket:  # the same guest, MQTT over WebSocket to the embedded broker
        text = config.read_text().replace(relay.broker_url, f"{relay.ws_url}/mqtt")
        config.write_text(text)
    secret = {"COPLAY_APP_CLIENT_SECRET": relay.client_secret}
    guest = StackGuest(config, "", workdir, args=("--log-level", "info"), env=secret)
    stack.guests.append(guest)
    after = len(host.lines())
    guest.send(state={"buttons": 0, "lx": 1, "ly": 1})
    host.wait_lines("input", after=after, user=user, timeout=30)
    changes: dict[tuple[int, int, int], int] = {}
    period = 1.0 / RATE_HZ
    start = time.monotonic()
    for i in range(count):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # a fixed-rate input source: the wait is the rate
        state = pad_state(i)
        changes[key(state["buttons"], state["lx"], state["ly"])] = time.monotonic_ns()
        guest.send(state=state)
    time.sleep(TAIL_S)  # frames in flight
    lines = [x for x in host.lines()[after:] if x.get("user") == user]
    guest.close()
    sent = [float(x["lat_us"]) for x in lines if x.get("lat_us") is not None]
    return {"pad_us": latencies(lines, changes), "send_us": sent, "changes": count}


def browser_guest(
    stack: Stack, host: StackHost, browser: Browser, user: str, count: int
) -> dict[str, Any]:
    relay = stack.relays[0]
    link = str(relay.invite(user, SESSION)["url"])
    stack.ledger.secret("invite code", link.partition("#")[2])
    tab = browser.tab(link)
    tab.js("window.__pad.plug()")
    tab.wait(lambda s: s.get("seat") is not None, timeout=30, what="a seat")
    states = []
    for i in range(count):
        s = pad_state(i)
        # floats the page maps back to exactly these SDL values (gamepad.js's axis())
        x = s["lx"] / (32768 if s["lx"] < 0 else 32767)
        y = s["ly"] / (32768 if s["ly"] < 0 else 32767)
        states.append({"a": s["buttons"] & 1, "x": x, "y": y, "key": s})
    after = len(host.lines())
    skew_ms = float(tab.js(PAGE_SKEW))
    tab.js("window.coplayPollReset()")
    offset = realtime_offset_ns()
    tab.js(PAGE_DRIVE, count, RATE_HZ, states)
    tab.wait(
        lambda s: bool(tab.js("return window.__drive.done")),
        timeout=count / RATE_HZ + 30,
        what="the drive's end",
    )
    time.sleep(TAIL_S)  # frames in flight
    stamps = tab.js("return window.__drive.stamps")
    polls = tab.status()["stats"]
    changes = {}
    for state, stamp_ms in zip(states, stamps, strict=True):
        s = state["key"]
        changes[key(s["buttons"], s["lx"], s["ly"])] = int((stamp_ms + skew_ms) * 1e6) - offset
    lines = [x for x in host.lines()[after:] if x.get("user") == user]
    tab.close()
    return {
        "pad_us": latencies(lines, changes),
        "changes": count,
        "skew_ms": skew_ms,
        "polls": polls,
    }


def run(workdir: Path, seconds: float) -> dict[str, Any]:
    count = int(RATE_HZ * seconds)
    stack = Stack(Ledger(workdir / "logs"), "bench_browser", f"b{uuid.uuid4().hex[:8]}")
    browser = None
    try:
        relay = stack.relay(guest_tokens="app", log_level="info")
        host = stack.host(relay, session=SESSION, seats=(2, 3, 4), log_level="info")
        host.wait_ready()
        rows = {
            "python_tcp": python_guest(stack, host, "py-tcp", count, websocket=False),
            "python_ws": python_guest(stack, host, "py-ws", count, websocket=True),
        }
        browser = Browser(workdir / "chromium")
        rows["browser_ws"] = browser_guest(stack, host, browser, "web", count)
    finally:
        if browser is not None:
            browser.quit()
        stack.close()
    labels = {
        "python_tcp": ("coplay-guest (virtual pad)", "MQTT/TCP"),
        "python_ws": ("coplay-guest (virtual pad)", "MQTT/WebSocket"),
        "browser_ws": ("browser guest (headless Chromium)", "MQTT/WebSocket"),
    }
    body = []
    result: dict[str, Any] = {"rate_hz": RATE_HZ, "seconds": seconds}
    for name, row in rows.items():
        s = summary(row["pad_us"])
        result[name] = {**{k: v for k, v in row.items() if k not in ("pad_us", "send_us")},
                        "pad_change_us": s}  # fmt: skip
        if row.get("send_us"):
            result[name]["send_stamp_us"] = summary(row["send_us"])
        guest, transport = labels[name]
        body.append([guest, transport, f"{int(s['n'])}/{row['changes']}",
                     *(round(s[q] / 1000, 3) for q in ("p50", "p90", "p99", "max"))])  # fmt: skip
    print(
        table(
            f"Pad change -> host sink, embedded broker, {RATE_HZ} Hz for {seconds:g} s each "
            "(ms; one machine, loopback)",
            ["guest", "transport", "matched", "p50", "p90", "p99", "max"],
            body,
        )
    )
    web = rows["browser_ws"]
    polls = web["polls"]
    print(
        f"  page polls: {polls['polls']} in the drive, {polls['gapsOver4ms']} gaps over 4 ms, "
        f"longest {polls['maxGapMs']:.1f} ms; page clock skew {web['skew_ms']:.3f} ms"
    )
    write_json("browser", {"browser": result})
    return {**result, "budget_objects": []}


if __name__ == "__main__":
    import sys

    out = run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/coplay-bench-browser"), 3)
    print(json.dumps({k: v for k, v in out.items() if k != "budget_objects"}, default=str)[:2000])
