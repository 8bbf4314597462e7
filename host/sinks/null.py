"""The ``null`` sink: states go nowhere (benchmarks, dry runs)."""

from __future__ import annotations

from host.sinks.base import FrameMeta, RumbleCallback
from relay.frames import PadState


class NullSink:
    nonblocking = True

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        pass

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        pass

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        pass

    def close(self) -> None:
        pass
