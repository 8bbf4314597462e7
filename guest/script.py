"""Scripts that drive the virtual pad: the built-in demo pattern, a file, or live commands.

A script is JSON objects, one per line::

    {"press": "A"}            {"release": "A"}          {"tap": "A", "ms": 40}
    {"axis": "LEFTX", "value": -32768}                  {"state": {"buttons": 1, "lx": 100}}
    {"sleep": 0.25}           {"detach": true}          {"attach": true}

Buttons and axes are names (``A``, ``DPAD_UP``, ``LEFTX``, ``TRIGGERRIGHT``) or
SDL numbers. ``COPLAY_VIRTUAL_SCRIPT`` chooses the script for ``--source
virtual``: unset, the demo pattern (stick sweeps, taps, holds) loops forever; a
path plays that file once and the pad keeps its last state; ``-`` reads commands
from stdin as they come, so another program can play through the guest (the
tests and the benchmark drive guest processes this way). ``--script`` on the
command line wins over the variable; ``coplay-guest --help`` shows the format.

``COPLAY_VIRTUAL_STAMPS=PATH`` (for the benchmark) records the instant of each
pad change (``time.monotonic_ns()``, the host's clock on the same machine) and
the state it made, and writes them to PATH as JSON lines when the guest stops:
``{"t_ns": ..., "buttons": ..., "axes": [lx, ly, rx, ry, lt, rt]}``, the same
content as the host's jsonl sink, so the two can be matched.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TextIO

import structlog

from guest.padmath import PadAxis
from guest.virtual import VirtualPad
from relay.errors import ConfigError
from relay.frames import AXIS_MAX, TRIGGER_MAX, Button, PadState

ENV_SCRIPT: Final = "COPLAY_VIRTUAL_SCRIPT"
ENV_STAMPS: Final = "COPLAY_VIRTUAL_STAMPS"
MAX_STAMPS: Final = 200_000  # changes recorded at most (about 28 min at 120 Hz); then no more

Verb = Literal["press", "release", "tap", "axis", "state", "sleep", "detach", "attach"]


@dataclass(frozen=True, slots=True)
class Command:
    action: Verb
    target: int = 0  # button or axis number
    value: int = 0  # axis value, tap length in ms
    seconds: float = 0.0
    state: PadState | None = None


def _number(value: Any, kind: type[Button] | type[PadAxis]) -> int:
    """A button or axis given by SDL number or by name (any case); ValueError if unknown."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= max(kind):
        return value
    if isinstance(value, str) and value.upper() in kind.__members__:
        return int(kind[value.upper()])
    raise ValueError(f"unknown {'button' if kind is Button else 'axis'} {value!r}")


def _button(value: Any) -> int:
    return _number(value, Button)


def _axis(value: Any) -> int:
    return _number(value, PadAxis)


def parse_command(text: str) -> Command | None:
    """One script line as a Command (None for a blank or ``#`` line); ValueError if bad."""
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    if "press" in obj:
        return Command("press", _button(obj["press"]))
    if "release" in obj:
        return Command("release", _button(obj["release"]))
    if "tap" in obj:
        return Command("tap", _button(obj["tap"]), int(obj.get("ms", 40)))
    if "axis" in obj:
        return Command("axis", _axis(obj["axis"]), int(obj["value"]))
    if "state" in obj:
        fields = obj["state"]
        if not isinstance(fields, dict):
            raise ValueError("state must be an object")
        return Command("state", state=PadState(**{k: int(v) for k, v in fields.items()}))
    if "sleep" in obj:
        return Command("sleep", seconds=max(0.0, float(obj["sleep"])))
    if obj.get("detach"):
        return Command("detach")
    if obj.get("attach"):
        return Command("attach")
    raise ValueError(f"unknown command {text!r}")


def load_script(path: Path) -> list[Command]:
    """A script file's commands (ConfigError naming the line if one is bad)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{ENV_SCRIPT}={path}: cannot read: {exc.strerror or exc}") from exc
    commands = []
    for number, line in enumerate(lines, 1):
        try:
            command = parse_command(line)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from exc
        if command is not None:
            commands.append(command)
    return commands


def demo_pattern() -> list[Command]:
    """About 7 s of play: a left-stick circle, taps, a hold, a trigger ramp, the d-pad."""
    steps: list[Command] = []
    for i in range(41):  # a full circle in 2 s
        angle = 2 * math.pi * i / 40
        steps.append(Command("axis", PadAxis.LEFTX, round(AXIS_MAX * math.cos(angle))))
        steps.append(Command("axis", PadAxis.LEFTY, round(AXIS_MAX * math.sin(angle))))
        steps.append(Command("sleep", seconds=0.05))
    steps += [Command("axis", PadAxis.LEFTX, 0), Command("axis", PadAxis.LEFTY, 0)]
    for _ in range(3):
        steps += [Command("tap", Button.A, 40), Command("sleep", seconds=0.25)]
    steps += [Command("press", Button.B), Command("sleep", seconds=1.0)]
    steps += [Command("release", Button.B), Command("sleep", seconds=0.2)]
    for i in range(11):
        steps += [
            Command("axis", PadAxis.TRIGGERRIGHT, TRIGGER_MAX * i // 10),
            Command("sleep", seconds=0.05),
        ]
    steps.append(Command("axis", PadAxis.TRIGGERRIGHT, 0))
    for button in (Button.DPAD_UP, Button.DPAD_RIGHT, Button.DPAD_DOWN, Button.DPAD_LEFT):
        steps += [Command("tap", button, 80), Command("sleep", seconds=0.15)]
    steps.append(Command("sleep", seconds=1.0))
    return steps


def apply(pad: VirtualPad, command: Command, sleep: Callable[[float], bool]) -> bool:
    """Do one command; False when ``sleep`` says stop. ``sleep(s)`` returns True to go on."""
    match command.action:
        case "press" | "release":
            pad.set_button(command.target, command.action == "press")
        case "tap":
            pad.set_button(command.target, True)
            go_on = sleep(command.value / 1000)
            pad.set_button(command.target, False)
            return go_on
        case "axis":
            pad.set_axis(command.target, command.value)
        case "state":
            if command.state is not None:
                pad.set_state(command.state)
        case "sleep":
            return sleep(command.seconds)
        case "detach":
            pad.detach()
        case "attach":
            pad.attach()
    return True


def stdin_commands(stream: TextIO, on_error: Callable[[str], None]) -> Iterator[Command]:
    """Commands from a stream as they arrive; bad lines are reported and skipped."""
    for line in stream:
        try:
            command = parse_command(line)
        except (ValueError, TypeError, KeyError) as exc:
            on_error(str(exc))
            continue
        if command is not None:
            yield command


class StampLog:
    """The instant of each virtual pad change and its state, written out at :meth:`close`.

    Kept in memory while the guest runs: recording is a clock read and a list
    append on the thread that changed the pad, no system call that could hand
    the GIL to the loop thread before the stamp is taken.
    """

    def __init__(self, path: Path, limit: int = MAX_STAMPS) -> None:
        self.path = path
        self._limit = limit
        self._stamps: list[tuple[int, PadState]] = []

    def __call__(self, state: PadState) -> None:
        if len(self._stamps) < self._limit:
            self._stamps.append((time.monotonic_ns(), state))

    def close(self) -> None:
        lines = [
            json.dumps({"t_ns": t, "buttons": s.buttons, "axes": list(s.axes)})
            for t, s in self._stamps
        ]
        self.path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


class ScriptRunner:
    """Plays commands on a virtual pad in a thread of its own (``loop`` repeats them)."""

    def __init__(self, pad: VirtualPad, commands: Iterable[Command], *, loop: bool = False) -> None:
        self._pad = pad
        self._commands = commands
        self._loop = loop
        self._stop = threading.Event()
        self._log = structlog.get_logger("guest.script")
        self._thread = threading.Thread(target=self._run, name="virtual-pad-script", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 0.2) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _sleep(self, seconds: float) -> bool:
        return not self._stop.wait(seconds)

    def _run(self) -> None:
        commands = self._commands if not self._loop else list(self._commands)
        while not self._stop.is_set():
            for command in commands:
                if self._stop.is_set():
                    return
                try:
                    if not apply(self._pad, command, self._sleep):
                        return
                except Exception as exc:  # DeviceError: e.g. driving a detached pad
                    self._log.warning("script_step_failed", action=command.action, error=str(exc))
            if not self._loop:
                return
