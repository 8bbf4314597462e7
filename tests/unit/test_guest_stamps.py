"""The virtual pad's change stamps (COPLAY_VIRTUAL_STAMPS): the host sink's content, bounded."""

from __future__ import annotations

import json
import time
from pathlib import Path

from guest.script import StampLog
from relay.frames import NEUTRAL


def test_stamps_are_written_as_the_sinks_content_with_the_monotonic_clock(tmp_path: Path) -> None:
    log = StampLog(tmp_path / "stamps.jsonl")
    before = time.monotonic_ns()
    log(NEUTRAL._replace(buttons=1, lx=-5, rt=7))
    log(NEUTRAL)
    after = time.monotonic_ns()
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "stamps.jsonl").read_text().splitlines()]
    assert [(x["buttons"], x["axes"]) for x in lines] == [(1, [-5, 0, 0, 0, 0, 7]), (0, [0] * 6)]
    assert before <= lines[0]["t_ns"] <= lines[1]["t_ns"] <= after


def test_a_long_run_keeps_at_most_the_limit(tmp_path: Path) -> None:
    log = StampLog(tmp_path / "stamps.jsonl", limit=3)
    for i in range(100):
        log(NEUTRAL._replace(lx=i))
    log.close()
    lines = (tmp_path / "stamps.jsonl").read_text().splitlines()
    assert [json.loads(x)["axes"][0] for x in lines] == [0, 1, 2]
