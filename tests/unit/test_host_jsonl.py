"""The jsonl sink writes DESIGN's line format exactly, one flushed object per line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.sinks import make_sink
from host.sinks.base import FrameMeta
from host.sinks.jsonl import JsonlSink
from host.sinks.null import NullSink
from relay.errors import ConfigError
from relay.frames import PadState, Rumble


def no_rumble(seat: int, frame: Rumble) -> None:
    """A jsonl pad never rumbles."""


KEYS = ["t_ns", "seat", "user", "epoch", "seq", "buttons", "axes", "reason", "lat_us"]


def read(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_input_line_has_every_field_in_order(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    sink = JsonlSink(path)
    sink.open(2, no_rumble)
    sink.apply(
        2, PadState(5, -1, 2, -3, 4, 32767, 0), FrameMeta("alice", 123, 45, 99, 1_000_000, 250)
    )
    # flushed at once: readable before close
    (line,) = read(path)
    assert list(line) == KEYS
    assert line == {
        "t_ns": 1_000_000,
        "seat": 2,
        "user": "alice",
        "epoch": 123,
        "seq": 45,
        "buttons": 5,
        "axes": [-1, 2, -3, 4, 32767, 0],
        "reason": "input",
        "lat_us": 250,
    }
    sink.close()


@pytest.mark.parametrize("reason", ["stale", "bye", "shutdown"])
def test_neutral_lines_carry_the_reason_and_nulls(tmp_path: Path, reason: str) -> None:
    path = tmp_path / "p.jsonl"
    sink = JsonlSink(path)
    sink.open(3, no_rumble)
    sink.neutral(3, reason, FrameMeta(None, None, None, None, 7, None))
    sink.close()
    (line,) = read(path)
    assert line == {
        "t_ns": 7,
        "seat": 3,
        "user": None,
        "epoch": None,
        "seq": None,
        "buttons": 0,
        "axes": [0, 0, 0, 0, 0, 0],
        "reason": reason,
        "lat_us": None,
    }


def test_lines_append_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p.jsonl"
    for n in range(2):
        sink = JsonlSink(path)
        sink.open(2, no_rumble)
        sink.apply(2, PadState(n), FrameMeta("a", 1, n, 0, n, None))
        sink.close()
    assert [line["buttons"] for line in read(path)] == [0, 1]


def test_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot open"):
        JsonlSink(tmp_path / "file" / "p.jsonl").open(2, no_rumble)


def test_make_sink_picks_by_spec(tmp_path: Path) -> None:
    assert isinstance(make_sink("null", rumble_cap_ms=100), NullSink)
    sink = make_sink(f"jsonl:{tmp_path / 'x.jsonl'}", rumble_cap_ms=100)
    assert isinstance(sink, JsonlSink)
    with pytest.raises(ValueError):
        make_sink("jsonl:", rumble_cap_ms=100)
