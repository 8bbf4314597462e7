"""Host rule 9 for one seat: is this Input late by the sender's own clock?

The delay ``host_now - t`` holds the offset between the two clocks; the best
(smallest) delay of the epoch is that offset plus the fastest trip, so the
excess over it is how late the frame is. The best may rise by DRIFT_US_PER_S
(two machines' clocks drift apart); frames late for LATE_RESYNC_S without
catching up (a forged stamp once lowered the best) make the best start over.
"""

from __future__ import annotations

from typing import Final

from relay.serial32 import HALF, WRAP

DRIFT_US_PER_S: Final = 500.0  # the best delay may rise this fast (clock drift)
DRIFT_SPAN_S: Final = 1.0  # ... credited for at most this long between two frames
LATE_RESYNC_S: Final = 1.0  # frames late this long without catching up: the best was wrong
_MASK: Final = WRAP - 1


class LateFilter:
    """The best delay of one seat's epoch and the run of late frames since it."""

    __slots__ = ("_best", "_best_at", "_late_excess", "_late_since", "_stale_us")

    def __init__(self, stale_s: float) -> None:
        self._stale_us = stale_s * 1e6
        # the smallest ``host_now - t`` (us, mod 2**32) of this epoch, raised by
        # DRIFT_US_PER_S since ``_best_at``; None until the epoch's first Input
        self._best: float | None = None  # float: the drift allowance adds fractions
        self._best_at = 0.0
        self._late_since: float | None = None  # first of an unbroken run of late frames
        self._late_excess = 0.0  # how late that first one was (us)

    def reset(self) -> None:
        """A new epoch: its clock offset is not known yet."""
        self._best = None
        self._late_since = None

    def start(self, t: int, now: float) -> None:
        """The epoch's first Input: its delay is the best so far."""
        self._best = (int(now * 1e6) - t) & _MASK
        self._best_at = now

    def is_late(self, t: int, now: float) -> bool:
        """Whether an Input stamped ``t`` is more than ``stale_ms`` over the epoch's best."""
        delay = (int(now * 1e6) - t) & _MASK
        best = self._best
        if best is None:
            self._best = delay
            self._best_at = now
            return False
        # drift is credited for at most DRIFT_SPAN_S at a time: a stall earns no slack
        gap = now - self._best_at
        best += (gap if gap < DRIFT_SPAN_S else DRIFT_SPAN_S) * DRIFT_US_PER_S
        if best >= WRAP:
            best -= WRAP
        excess = delay - best  # both in [0, 2**32): bring it into [-2**31, 2**31)
        if excess >= HALF:
            excess -= WRAP
        elif excess < -HALF:
            excess += WRAP
        self._best_at = now
        if excess <= self._stale_us:
            self._best = delay if excess < 0 else best
            if self._late_since is not None:
                self._late_since = None
            return False
        self._best = best
        since = self._late_since
        if since is None:
            self._late_since = now
            self._late_excess = excess
            return True
        # a backlog drains faster than real time; a wrong best stays as late as it was
        if now - since >= LATE_RESYNC_S and self._late_excess - excess < (now - since) * 5e5:
            self._best = delay
            self._late_since = None
            return False
        return True
