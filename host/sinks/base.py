"""The Sink seam: where applied pad states go (a virtual pad, a log, a JSON-lines file, nowhere)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple, Protocol

from relay.frames import PadState, Rumble

REASON_INPUT: Final = "input"
REASON_STALE: Final = "stale"
REASON_BYE: Final = "bye"
REASON_SHUTDOWN: Final = "shutdown"


# (seat, frame): a game's force feedback on that seat's pad, for its guest
RumbleCallback = Callable[[int, Rumble], None]


class FrameMeta(NamedTuple):
    """Who a state came from and when; None where unknown (neutral states)."""

    user: str | None
    epoch: int | None
    seq: int | None
    t: int | None  # the guest's 32-bit microsecond stamp
    now_ns: int  # host monotonic ns when the state was handed to the sink
    lat_us: int | None  # now - t, when the guest shares our clock; else None


class Sink(Protocol):
    """One pad per seat, created at start-up and kept until :meth:`close`.

    ``apply`` and ``neutral`` run on one thread at a time (the pad writer, or the
    network thread on the fast path); ``open`` and ``close`` on the main thread
    before serving starts and after it stopped. A sink whose writes never block
    sets a class attribute ``nonblocking = True`` to allow the fast path (see
    :mod:`host.writer`); without it, every state goes through the writer thread.
    """

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        """Create seat ``seat``'s pad (DeviceError when that is impossible).

        What a game sends back to the pad (rumble) goes to ``on_rumble``, on a thread
        of the sink's; sinks without force feedback never call it.
        """
        ...

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None: ...

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        """All released, sticks centred, triggers 0, because of ``reason``."""
        ...

    def close(self) -> None: ...
