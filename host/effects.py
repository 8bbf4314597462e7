"""What the seat table decides, as values for its caller to carry out.

- :class:`Apply`        apply this Input's state to seat N (a pad state: the writer queues it)
- :class:`Neutral`      seat N goes neutral now, for ``reason`` (a pad state too)
- :class:`Reply`        send this frame to ``user`` on ``out/{user}`` (the daemon sends it)
- :class:`SeatChange`   occupancy changed (the daemon publishes HostState and logs it)
"""

from __future__ import annotations

from typing import Final, NamedTuple, TypeAlias

from relay.frames import Frame, Input


class Apply(NamedTuple):
    seat: int
    user: str
    frame: Input


class Neutral(NamedTuple):
    seat: int
    reason: str  # "stale" | "bye" | "shutdown"
    user: str | None
    epoch: int | None


class Reply(NamedTuple):
    user: str
    frame: Frame
    qos: int


class SeatChange(NamedTuple):
    event: str  # "seat_taken" | "seat_freed" | "epoch_replaced"
    seat: int
    user: str
    epoch: int
    why: str  # "hello" | "input" | "bye" | "idle"


PadItem: TypeAlias = Apply | Neutral  # what reaches a pad, through the queue
Effect: TypeAlias = Apply | Neutral | Reply | SeatChange
NO_EFFECTS: Final[tuple[Effect, ...]] = ()
