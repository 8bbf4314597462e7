"""The demo: a relay, a host and a guest with a virtual pad, on loopback, as real processes.

``python -m relay.demo`` (``make demo``) writes a throwaway config with fresh
secrets into a temporary directory, starts ``coplay-relay serve`` (token API and
embedded broker) and ``coplay-host``, has the host invite the friend
(``coplay-host invite friend`` prints a join link) and starts ``coplay-guest
join LINK --source virtual`` with no config and no secret of the streamer's:
the real way a friend gets in. It shows player 2's pad as the host applies it
together with the guest's status, then prints a latency summary and stops
everything it started. It imports neither the host nor the guest: it starts
them as processes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from relay.frames import Button
from relay.procs import free_port, stop_process, wait_listening

SESSION = "demo"
HOST_USER = "streamer"
GUEST_USER = "friend"
BROWSER_USER = "browser"  # seat 3: a person may open the page and play along
BUTTON_LABELS = {
    Button.A: "A",
    Button.B: "B",
    Button.X: "X",
    Button.Y: "Y",
    Button.LEFTSHOULDER: "LB",
    Button.RIGHTSHOULDER: "RB",
    Button.BACK: "Back",
    Button.START: "Start",
    Button.DPAD_UP: "Up",
    Button.DPAD_DOWN: "Down",
    Button.DPAD_LEFT: "Left",
    Button.DPAD_RIGHT: "Right",
    Button.LEFTSTICK: "LS",
    Button.RIGHTSTICK: "RS",
}


@dataclass
class Part:
    """One started process and the file its stderr goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: signal.Signals, timeout: float = 5.0) -> int:
        return stop_process(self.proc, sig, timeout)


@dataclass
class Demo:
    workdir: Path
    seconds: float
    parts: list[Part] = field(default_factory=list)
    api_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    ws_port: int = field(default_factory=free_port)

    def env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            # a state directory each: host and guest get device ids (MQTT client ids) of their own
            XDG_STATE_HOME=str(self.workdir / "state" / name),
            PYGAME_HIDE_SUPPORT_PROMPT="1",
            SDL_VIDEODRIVER=env.get("SDL_VIDEODRIVER", "dummy"),
            SDL_AUDIODRIVER=env.get("SDL_AUDIODRIVER", "dummy"),
        )
        return env

    def write_config(self, sink: str) -> None:
        w = self.workdir
        for name in ("jwt_secret", "app_secret"):  # the streamer's; the guest gets neither
            path = w / name
            path.write_text(secrets.token_urlsafe(48) + "\n")
            path.chmod(0o600)
        (w / "relay.toml").write_text(
            "[server]\n"
            f'api_listen = "127.0.0.1:{self.api_port}"\n'
            f'mqtt_listen = "127.0.0.1:{self.mqtt_port}"\n'
            f'ws_listen = "127.0.0.1:{self.ws_port}"\n'
            'jwt_secret_file = "jwt_secret"\n'
            f'state_db = "{w / "relay.sqlite3"}"\n'
            "max_token_s = 3600\n\n"
            "[[apps]]\n"
            'app_id = "coplay"\n'
            'client_id = "demo-app"\n'
            'client_secret_file = "app_secret"\n'
            f'hosts = ["{HOST_USER}"]\n'
        )
        common = (
            "[relay]\n"
            f'api_url = "http://127.0.0.1:{self.api_port}"\n'
            f'broker_url = "mqtt://127.0.0.1:{self.mqtt_port}"\n'
            'app_id = "coplay"\n'
            'app_client_id = "demo-app"\n'
            'app_client_secret_file = "app_secret"\n'
            f'session = "{SESSION}"\n'
        )
        (w / "host.toml").write_text(
            common + f'username = "{HOST_USER}"\n\n[host]\nseats = [2, 3]\n'
            f'allow = ["{GUEST_USER} = 2", "{BROWSER_USER} = 3"]\n'
            f'sink = "{sink}"\nstatus_interval_s = 0\n'
        )

    def start(self, name: str, argv: Sequence[str]) -> Part:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=self.workdir,
                env=self.env(name),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops each part in order
            )
        part = Part(name, proc, log)
        self.parts.append(part)
        return part

    def invite(self, user: str = GUEST_USER) -> str | None:
        """``coplay-host invite USER``: the join link it prints (its only stdout line)."""
        log = self.workdir / "invite.log"
        with open(log, "ab") as err:
            done = subprocess.run(
                [sys.executable, "-m", "host.cli", "invite", "--config", "host.toml", user],
                cwd=self.workdir,
                env=self.env("host"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                timeout=60,
                check=False,
            )
        lines = done.stdout.decode(errors="replace").splitlines()
        return lines[0] if done.returncode == 0 and len(lines) == 1 else None

    def stop_all(self) -> dict[str, int]:
        codes = {}
        order = {"guest": signal.SIGINT, "host": signal.SIGTERM, "relay": signal.SIGTERM}
        for part in sorted(self.parts, key=lambda p: list(order).index(p.name)):
            codes[part.name] = part.stop(order[part.name])
        return codes


def tail_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yields the lines appended to ``path`` so far, each call of next() reading what is new."""
    handle: IO[str] | None = None
    buffer = ""
    while True:
        if handle is None and path.exists():
            handle = path.open(encoding="utf-8")
        if handle is not None:
            buffer += handle.read()
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
        yield {}


def last_status(log: Path) -> str:
    """The guest's most recent status event, in a few words."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "starting"
    for line in reversed(lines[-50:]):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "guest_status":
            return format_status(event)
    return "starting"


def format_status(event: dict[str, Any]) -> str:
    """``connected, seat 2, rtt 0.9 ms ±0.2, 61 frames/s``"""
    parts = [str(event.get("state", "?"))]
    if event.get("seat"):
        parts.append(f"seat {event['seat']}")
    if event.get("rtt_p50_ms") is not None:
        rtt = f"rtt {event['rtt_p50_ms']:.1f} ms"
        if event.get("jitter_ms") is not None:
            rtt += f" ±{event['jitter_ms']:.1f}"
        parts.append(rtt)
    if event.get("fps") is not None:
        parts.append(f"{event['fps']:.0f} frames/s")
    return ", ".join(parts)


def describe(line: dict[str, Any]) -> str:
    buttons = int(line.get("buttons") or 0)
    held = [label for b, label in BUTTON_LABELS.items() if buttons >> b & 1] or ["-"]
    lx, ly, rx, ry, lt, rt = line.get("axes") or [0] * 6
    return (
        f"P{line.get('seat')} {line.get('user') or '-':<8} [{' '.join(held):<12}] "
        f"L({lx / 32767:+.2f},{ly / 32767:+.2f}) R({rx / 32767:+.2f},{ry / 32767:+.2f}) "
        f"LT {lt / 32767:.2f} RT {rt / 32767:.2f}"
    )


def run_demo(seconds: float, keep: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="coplay-demo-"))
    demo = Demo(workdir, seconds)
    jsonl = workdir / "p2.jsonl"
    uinput_ok = os.access("/dev/uinput", os.W_OK)
    demo.write_config(f"jsonl:{jsonl}")
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns - 1  # one live line, rewritten in place
    lats: list[int] = []
    states = 0
    neutral: dict[str, int] = {}
    ok = False
    lines = tail_jsonl(jsonl)
    try:
        print(
            f"coplay demo: relay on 127.0.0.1:{demo.api_port} (API), "
            f"127.0.0.1:{demo.mqtt_port} (MQTT); workdir {workdir}"
        )
        relay = demo.start("relay", ["-m", "relay.cli", "serve", "--config", "relay.toml"])
        deadline = time.monotonic() + 20
        try:
            for port in (demo.api_port, demo.mqtt_port):
                wait_listening(port, deadline - time.monotonic(), relay.proc)
        except TimeoutError:
            print(f"coplay demo: the relay did not start; see {relay.log}", file=sys.stderr)
            return 1
        demo.start("host", ["-m", "host.cli", "--config", "host.toml"])
        link = demo.invite()
        if link is None:
            print(f"coplay demo: coplay-host invite failed; see {workdir}", file=sys.stderr)
            return 1
        print(f"coplay demo: coplay-host invite {GUEST_USER} -> a join link for the friend")
        guest = demo.start(
            "guest",
            ["-m", "guest.cli", "join", link, "--source", "virtual", "--name", "Friend"],
        )
        print(
            "coplay demo: host (jsonl sink; "
            f"{'uinput available' if uinput_ok else 'no writable /dev/uinput here'}) "
            "and guest (coplay-guest join LINK, virtual pad) started; Ctrl-C stops early"
        )
        browser_link = demo.invite(BROWSER_USER)
        if browser_link is not None:
            print(f"coplay demo: play along as P3 in a browser on this machine: {browser_link}")
        end = time.monotonic() + 20 + seconds
        first_at: float | None = None
        shown = ""
        next_print = 0.0
        while time.monotonic() < end:
            for part in demo.parts:
                if part.proc.poll() is not None:
                    print(
                        f"\ncoplay demo: {part.name} exited with {part.proc.returncode}; "
                        f"see {part.log}",
                        file=sys.stderr,
                    )
                    return 1
            line = next(lines)
            if line:
                if line.get("reason") == "input":
                    states += 1
                    if line.get("lat_us") is not None:
                        lats.append(int(line["lat_us"]))
                else:
                    neutral[line["reason"]] = neutral.get(line["reason"], 0) + 1
                shown = describe(line)
                if first_at is None:
                    first_at = time.monotonic()
                    end = first_at + seconds
                continue
            now = time.monotonic()
            if now >= next_print:
                status = last_status(guest.log)
                text = f"{shown or 'waiting for player 2...'} | guest: {status}"
                print(
                    ("\r" + text[:width].ljust(width)) if tty else text,
                    end="" if tty else "\n",
                    flush=True,
                )
                next_print = now + (0.1 if tty else 1.0)
            time.sleep(0.01)  # the display's refresh tick
        ok = first_at is not None
        if not ok:
            print(
                f"\ncoplay demo: no input reached the host in 20 s; see the logs in {workdir}",
                file=sys.stderr,
            )
            return 1
    except KeyboardInterrupt:
        ok = states > 0
    finally:
        codes = demo.stop_all()
        for line in drain(lines):
            if line.get("reason") not in (None, "input"):
                neutral[line["reason"]] = neutral.get(line["reason"], 0) + 1
        print()
        print(f"coplay demo: stopped relay, host and guest (exit codes {codes})")
        if ok:
            print_summary(lats, states, neutral)
        if keep or not ok:
            print(f"coplay demo: logs and config kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def drain(lines: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the tail has that was not read yet."""
    found = []
    while line := next(lines):
        found.append(line)
    return found


def print_summary(lats: list[int], states: int, neutral: dict[str, int]) -> None:
    ordered = sorted(lats)

    def pct(q: float) -> str:
        if not ordered:
            return "-"
        return f"{ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] / 1000:.2f} ms"

    print(f"Latency, guest input -> host pad ({len(ordered)} states, embedded broker, loopback):")
    print(f"  p50 {pct(50)}   p90 {pct(90)}   p99 {pct(99)}   max {pct(100)}")
    others = ", ".join(f"{k}: {v}" for k, v in sorted(neutral.items())) or "none"
    print(f"States applied to P2: {states}; neutral events: {others}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coplay-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to show (15)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir with logs")
    args = parser.parse_args(argv)
    return run_demo(args.seconds, args.keep)


if __name__ == "__main__":
    sys.exit(main())
