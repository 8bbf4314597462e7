"""Bytes per Input frame on the wire, against a JSON encoding of the same state."""

from __future__ import annotations

import json
import random
from typing import Any

from relay.frames import (
    ALL_BUTTONS,
    AXIS_MAX,
    AXIS_MIN,
    NEUTRAL,
    TRIGGER_MAX,
    FrameCodec,
    Input,
    PadState,
)
from tests.bench.stats import summary, table, write_json


def states(n: int, rng: random.Random) -> list[PadState]:
    """Typical play: a few buttons, sticks anywhere, triggers often released."""
    out = []
    for _ in range(n):
        buttons = 0
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            buttons |= 1 << rng.randrange(15)
        axes = [rng.randint(AXIS_MIN, AXIS_MAX) if rng.random() < 0.6 else 0 for _ in range(4)]
        trig = [rng.randint(0, TRIGGER_MAX) if rng.random() < 0.3 else 0 for _ in range(2)]
        out.append(PadState(buttons, *axes, *trig))
    return out


def as_json(frame: Input) -> bytes:
    return json.dumps(
        {
            "kind": "input",
            "epoch": frame.epoch,
            "seq": frame.seq,
            "t": frame.t,
            "buttons": frame.buttons,
            "axes": [frame.lx, frame.ly, frame.rx, frame.ry, frame.lt, frame.rt],
        },
        separators=(",", ":"),
    ).encode()


def run() -> dict[str, Any]:
    rng = random.Random(7)
    codec = FrameCodec()
    epoch = rng.getrandbits(32)
    t0 = rng.getrandbits(32)
    frames = [
        Input.of(epoch, 1_000_000 + i, (t0 + i * 8333) % (1 << 32), s)
        for i, s in enumerate(states(5000, rng))
    ]
    packed = [len(codec.encode(f)) for f in frames]
    text = [len(as_json(f)) for f in frames]
    neutral = len(codec.encode(Input.of(2**32 - 1, 2**32 - 1, 2**32 - 1, NEUTRAL)))
    busiest = len(
        codec.encode(
            Input(
                2**32 - 1,
                2**32 - 1,
                2**32 - 1,
                ALL_BUTTONS,
                AXIS_MIN,
                AXIS_MIN,
                AXIS_MIN,
                AXIS_MIN,
                TRIGGER_MAX,
                TRIGGER_MAX,
            )
        )
    )
    result = {
        "msgpack": summary(packed),
        "json": summary(text),
        "msgpack_mean": sum(packed) / len(packed),
        "json_mean": sum(text) / len(text),
        "neutral_max": neutral,
        "busiest": busiest,
    }
    print(
        table(
            "Bytes per Input frame (5000 typical states)",
            ["encoding", "mean", "p50", "max", "neutral (worst)", "busiest legal"],
            [
                [
                    "msgpack (coplay)",
                    result["msgpack_mean"],
                    packed and sorted(packed)[2500],
                    max(packed),
                    neutral,
                    busiest,
                ],
                ["JSON, same state", result["json_mean"], sorted(text)[2500], max(text), "-", "-"],
            ],
        )
    )
    write_json("bytes", result)
    return result


if __name__ == "__main__":
    run()
