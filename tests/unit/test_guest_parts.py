"""Small guest pieces: deadzone, pad selection, status text, script parsing, trigger maths."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import pytest

from guest.cli import build_parser
from guest.devices import Selection
from guest.pad import rumble_strength
from guest.padmath import PadAxis, apply_deadzone, radial_deadzone, with_axis, with_button
from guest.script import Command, demo_pattern, load_script, parse_command
from guest.status import CLEAR_LINE, FrameRate, LineStream, StatusReporter, StatusView, format_line
from guest.virtual import _controller_trigger, trigger_raw
from relay.errors import ConfigError
from relay.frames import NEUTRAL, Button, PadState

# ---------------------------------------------------------------- pad state


def test_deadzone_off_by_default_passes_everything() -> None:
    assert radial_deadzone(100, -50, 0.0) == (100, -50)


def test_radial_deadzone_centres_small_moves_and_keeps_full_deflection() -> None:
    assert radial_deadzone(3000, 3000, 0.2) == (0, 0)
    assert radial_deadzone(32767, 0, 0.2) == (32767, 0)
    x, y = radial_deadzone(-20000, 0, 0.2)
    assert y == 0
    assert x == pytest.approx(-32767 * (20000 / 32767 - 0.2) / 0.8, abs=2)
    x, y = radial_deadzone(-32768, -32768, 0.1)  # a corner: clamped, direction kept
    assert x == y < 0


def test_apply_deadzone_leaves_triggers_and_buttons() -> None:
    state = PadState(buttons=5, lx=100, ly=100, rx=30000, ry=0, lt=10, rt=20)
    out = apply_deadzone(state, 0.1)
    assert (out.buttons, out.lx, out.ly, out.lt, out.rt) == (5, 0, 0, 10, 20)
    assert 29000 < out.rx < 30000  # rescaled: the deadzone edge is 0, full stays full


def test_with_axis_and_button_clamp_and_ignore_unknowns() -> None:
    assert with_axis(NEUTRAL, PadAxis.TRIGGERLEFT, -5).lt == 0
    assert with_axis(NEUTRAL, PadAxis.LEFTY, 99999).ly == 32767
    assert with_axis(NEUTRAL, 9, 1) == NEUTRAL
    assert with_button(NEUTRAL, Button.Y, True).buttons == 8
    assert with_button(with_button(NEUTRAL, 3, True), 3, False) == NEUTRAL
    assert with_button(NEUTRAL, 40, True) == NEUTRAL


# ---------------------------------------------------------------- selection


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("auto", "auto", ""),
        ("", "auto", ""),
        ("1", "index", "1"),
        ("030000005e0400008e02000014010000", "guid", "030000005e0400008e02000014010000"),
        ("Xbox", "name", "Xbox"),
    ],
)
def test_selection_parse(text: str, kind: str, value: str) -> None:
    assert Selection.parse(text) == Selection(kind, value)  # type: ignore[arg-type]


def test_selection_matches_only_game_controllers() -> None:
    guid = "030000005e0400008e02000014010000"
    assert Selection.parse("auto").matches(0, "Any", guid, True)
    assert not Selection.parse("auto").matches(0, "Any", guid, False)
    assert Selection.parse("xbox").matches(3, "Xbox 360 Controller", guid, True)
    assert not Selection.parse("dualsense").matches(3, "Xbox 360 Controller", guid, True)
    assert Selection.parse("2").matches(2, "x", guid, True)
    assert not Selection.parse("2").matches(1, "x", guid, True)
    assert Selection.parse(guid.upper()).matches(5, "x", guid, True)


@pytest.mark.parametrize("value", [0, 1, 12345, 32767, 32768, 65534, 65535])
def test_rumble_strength_truncates_back_to_the_value(value: int) -> None:
    # pygame hands SDL int(strength * 0xFFFF)
    assert int(rumble_strength(value) * 0xFFFF) == value


# ---------------------------------------------------------------- trigger maths


def test_trigger_raw_reads_back_exactly_for_every_trigger_value() -> None:
    assert trigger_raw(0) == -32768
    assert trigger_raw(32767) == 32767
    for value in range(0, 32768, 7):
        assert _controller_trigger(trigger_raw(value)) == value


# ---------------------------------------------------------------- status


def view(**changes: object) -> StatusView:
    base = StatusView(
        state="connected",
        seat=2,
        host_online=True,
        rtt_p50_ms=3.14,
        jitter_ms=0.42,
        fps=60.0,
        controller="Xbox 360 Controller",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_status_line_shows_everything_the_friend_needs() -> None:
    line = format_line(view())
    assert line == (
        "connected | seat 2 | host online | rtt 3.1 ms ±0.4 | 60 fps | pad: Xbox 360 Controller"
    )
    line = format_line(
        view(state="reconnecting", seat=None, rtt_p50_ms=None, controller=None, note="lost")
    )
    assert line == "reconnecting | no seat | host online | 60 fps | pad: none (plug one in) | lost"


def test_line_stream_clears_the_status_line_before_log_lines() -> None:
    raw = io.StringIO()
    stream = LineStream(raw)
    stream.show("status 1")
    stream.write("log line\n")
    stream.show("status 2")
    stream.end()
    assert raw.getvalue() == (f"{CLEAR_LINE}status 1{CLEAR_LINE}log line\n{CLEAR_LINE}status 2\n")


def test_plain_reporter_logs_on_change_and_every_interval() -> None:
    logged: list[dict[str, object]] = []
    reporter = StatusReporter(
        line=None, log=lambda event, **kw: logged.append({"event": event, **kw}), plain_interval=5
    )
    reporter.update(0.0, view())
    reporter.update(1.0, view(fps=59.0))  # only numbers changed: wait for the interval
    reporter.update(2.0, view(seat=3))
    reporter.update(7.5, view(seat=3))
    assert [e["seat"] for e in logged] == [2, 3, 3]
    assert logged[0]["event"] == "guest_status"
    assert logged[0]["rtt_p50_ms"] == 3.14
    assert logged[0]["host"] == "online"


def test_frame_rate() -> None:
    rate = FrameRate(window=1.0)
    assert rate.update(0.0, 0) == 0.0
    assert rate.update(0.5, 30) == 0.0
    assert rate.update(1.0, 60) == pytest.approx(60.0)
    assert rate.update(3.0, 60) == 0.0


# ---------------------------------------------------------------- scripts


def test_parse_commands() -> None:
    assert parse_command('{"press": "a"}') == Command("press", Button.A)
    assert parse_command('{"release": 3}') == Command("release", 3)
    assert parse_command('{"tap": "DPAD_UP", "ms": 25}') == Command("tap", Button.DPAD_UP, 25)
    assert parse_command('{"axis": "triggerright", "value": 9}') == Command("axis", 5, 9)
    assert parse_command('{"sleep": 0.5}') == Command("sleep", seconds=0.5)
    assert parse_command('{"state": {"buttons": 1, "lx": 5}}') == Command(
        "state", state=PadState(buttons=1, lx=5)
    )
    assert parse_command('{"detach": true}') == Command("detach")
    assert parse_command('{"attach": true}') == Command("attach")
    assert parse_command("  # comment") is None
    assert parse_command("") is None


@pytest.mark.parametrize(
    "line", ["{", "[1]", '{"press": "Q"}', '{"axis": 9, "value": 1}', '{"jump": 1}']
)
def test_bad_commands_are_value_errors(line: str) -> None:
    with pytest.raises(ValueError):
        parse_command(line)


def test_load_script_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"press": "A"}\n\n{"nope": 1}\n')
    with pytest.raises(ConfigError, match=r"s\.jsonl:3: unknown command"):
        load_script(path)
    path.write_text('{"press": "A"}\n{"sleep": 0.1}\n')
    assert [c.action for c in load_script(path)] == ["press", "sleep"]


def test_demo_pattern_sweeps_taps_and_holds() -> None:
    steps = demo_pattern()
    actions = {c.action for c in steps}
    assert {"axis", "tap", "press", "release", "sleep"} <= actions
    total = sum(c.seconds for c in steps) + sum(c.value / 1000 for c in steps if c.action == "tap")
    assert 4 < total < 15
    xs = [c.value for c in steps if c.action == "axis" and c.target == PadAxis.LEFTX]
    assert max(xs) == 32767
    assert min(xs) < -32000
    assert not math.isnan(total)


def test_help_documents_scripted_play() -> None:
    """``coplay-guest --help`` tells a user how to drive the virtual pad from a file or stdin."""
    text = build_parser().format_help()
    assert "--script FILE|-" in text
    assert '{"press": "A"}' in text and '{"axis": "LEFTX", "value": -32768}' in text
    assert "COPLAY_VIRTUAL_SCRIPT" in text
