"""The streamer's status line and the log sink's human-readable pad changes."""

from __future__ import annotations

from typing import Any

from host.sinks.base import FrameMeta
from host.sinks.log import LogSink, button_names
from host.status import p50_ms, seat_lines, status_text
from relay.frames import Button, PadState, button_mask


def test_status_line_shows_seats_rate_latency_link_and_drops() -> None:
    lines = seat_lines(
        [(2, "alice"), (3, "")],
        applied={2: 600},
        latencies={2: [300, 400, 500]},
        stale={2: False, 3: False},
        interval_s=10.0,
    )
    text = status_text(lines, "connected", {"old_seq": 2, "malformed": 1})
    assert text == "P2 alice 60/s p50 0.4ms | P3 free | link connected | drops 3"


def test_silent_guest_and_unknown_latency() -> None:
    lines = seat_lines([(2, "bob")], {}, {}, {2: True}, 5.0)
    assert (
        status_text(lines, "reconnecting", {})
        == "P2 bob 0/s (silent) | link reconnecting | drops 0"
    )
    assert p50_ms([]) is None


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self.events.append(("debug:" + event, kw))


def test_log_sink_logs_button_changes_and_neutral() -> None:
    log = Recorder()
    sink = LogSink(log)
    sink.open(2, lambda seat, frame: None)
    meta = FrameMeta("alice", 1, 1, 0, 0, 120)
    sink.apply(2, PadState(button_mask(Button.A, Button.DPAD_UP)), meta)
    sink.apply(2, PadState(button_mask(Button.A, Button.DPAD_UP), lx=5), meta)  # axes only
    sink.neutral(2, "bye", meta)
    sink.close()
    names = [e for e, _ in log.events]
    assert names == ["pad_created", "pad_state", "debug:pad_axes", "pad_neutral", "pad_closed"]
    assert log.events[1][1]["buttons"] == "A+DPAD_UP"
    assert log.events[3][1]["reason"] == "bye"
    assert button_names(0) == "-"


def test_status_line_counts_callback_errors_only_when_there_are_some() -> None:
    lines = seat_lines([(2, "")], {}, {}, {}, 10.0)
    assert status_text(lines, "connected", {}, callback_errors=3) == (
        "P2 free | link connected | drops 0 | callback errors 3"
    )
    assert status_text(lines, "connected", {}) == "P2 free | link connected | drops 0"
