"""The seat table: who sits where, which frames count, and when a pad must go neutral.

Pure logic, no threads, no MQTT, no clock of its own: every method takes
``now`` (monotonic seconds) and returns *actions* for the caller to carry out,
so host rules 2-6 of DESIGN are unit-testable with plain values:

- :class:`Apply`        apply this Input's state to seat N
- :class:`Neutral`      seat N goes neutral now, for ``reason`` ("stale" | "bye")
- :class:`Reply`        send this frame to ``user`` on ``out/{user}``
- :class:`SeatChange`   occupancy changed (publish HostState, log it)

Frames that are dropped return no action and are counted in :attr:`SeatTable.drops`
by reason (see :class:`DropReason`; the decoder's reasons are counted there too).
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, NamedTuple, TypeAlias

from host.sinks.base import REASON_BYE, REASON_STALE
from relay.frames import (
    PROTO,
    Bye,
    Frame,
    Hello,
    Input,
    Ping,
    Pong,
    Reject,
    RejectCode,
    Welcome,
)
from relay.serial32 import HALF, WRAP

REMEMBER_EPOCHS: Final = 8  # ended/replaced epochs kept per seat, never accepted again
REJECT_MEMORY: Final = 1024  # users whose last Reject is remembered (rate limit)
SEQ_WINDOW: Final = 1 << 16  # rule 4: (seq - last) mod 2**32 in [1, SEQ_WINDOW) is newer
DRIFT_US_PER_S: Final = 500.0  # rule 9: the best delay may rise this fast (clock drift)
DRIFT_SPAN_S: Final = 1.0  # ... credited for at most this long between two frames
LATE_RESYNC_S: Final = 1.0  # frames late this long without catching up: the best was wrong
_MASK: Final = WRAP - 1


class DropReason(enum.StrEnum):
    """Why a frame changed nothing (the decoder's :class:`~relay.frames.Drop` values join these)."""

    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    UNKNOWN_KIND = "unknown_kind"
    OUT_OF_RANGE = "out_of_range"
    RETAINED = "retained"
    BAD_TOPIC = "bad_topic"
    UNEXPECTED_KIND = "unexpected_kind"  # a host -> guest frame sent to the host
    NOT_ALLOWED = "not_allowed"
    FULL = "full"
    STALE_EPOCH = "stale_epoch"
    OLD_SEQ = "old_seq"
    LATE = "late"  # rule 9: older than stale_ms by the sender's clock
    DUPLICATE = "duplicate"
    NOT_SEATED = "not_seated"
    PROTOCOL = "protocol"  # a Hello with a proto this host does not speak


class Apply(NamedTuple):
    seat: int
    user: str
    frame: Input


class Neutral(NamedTuple):
    seat: int
    reason: str  # "stale" | "bye"
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


Effect: TypeAlias = Apply | Neutral | Reply | SeatChange
NO_EFFECTS: Final[tuple[Effect, ...]] = ()


class _Seat:
    __slots__ = (
        "best",
        "best_at",
        "dead",
        "epoch",
        "last_input",
        "last_rx",
        "last_seq",
        "late_excess",
        "late_since",
        "number",
        "reserved",
        "stale",
        "user",
    )

    def __init__(self, number: int, reserved: str | None) -> None:
        self.number = number
        self.reserved = reserved  # the only user who may take it (``allow = ["user = seat"]``)
        self.user: str | None = None
        self.epoch = 0
        self.last_seq: int | None = None
        self.last_rx = 0.0
        self.stale = False
        self.dead: deque[tuple[str, int]] = deque(maxlen=REMEMBER_EPOCHS)
        self.last_input = 0.0  # when an Input of this epoch was last applied
        # rule 9: the smallest ``host_now - t`` (us, mod 2**32) of this epoch, raised by
        # DRIFT_US_PER_S since ``best_at``; None until the epoch's first Input
        self.best: float | None = None  # float: the drift allowance adds fractions
        self.best_at = 0.0
        self.late_since: float | None = None  # first of an unbroken run of late frames
        self.late_excess = 0.0  # how late that first one was (us)


class SeatTable:
    """Seats from the config, who may take them, and the per-seat epoch and seq checks."""

    def __init__(
        self,
        seats: Sequence[int],
        allowed: Mapping[str, int | None],
        *,
        stale_s: float = 0.25,
        idle_s: float = 60.0,
    ) -> None:
        if not seats:
            raise ValueError("at least one seat is needed")
        reserved = {seat: user for user, seat in allowed.items() if seat is not None}
        self._seats = [_Seat(n, reserved.get(n)) for n in seats]
        self._by_number = {seat.number: seat for seat in self._seats}
        self._by_user: dict[str, _Seat] = {}
        self._allowed = dict(allowed)
        self._stale_s = stale_s
        self._stale_us = stale_s * 1e6
        self._idle_s = idle_s
        self._rejected: dict[str, tuple[int, int]] = {}  # user -> (epoch, code) last rejected
        self.drops: Counter[str] = Counter()

    # ------------------------------------------------------------------ queries

    @property
    def first_come(self) -> bool:
        """True when ``allow`` is empty: any user may take a free seat."""
        return not self._allowed

    @property
    def seats(self) -> list[int]:
        return [seat.number for seat in self._seats]

    def occupancy(self) -> list[tuple[int, str]]:
        """``[(seat, user or "")]`` in config order, as HostState carries it."""
        return [(seat.number, seat.user or "") for seat in self._seats]

    def user_at(self, seat: int) -> str | None:
        found = self._by_number.get(seat)
        return found.user if found is not None else None

    def epoch_at(self, seat: int) -> int | None:
        found = self._by_number.get(seat)
        return found.epoch if found is not None and found.user is not None else None

    def is_stale(self, seat: int) -> bool:
        found = self._by_number.get(seat)
        return bool(found is not None and found.stale)

    # ------------------------------------------------------------------ frames

    def on_frame(self, user: str, frame: Frame, now: float) -> Sequence[Effect]:
        """What ``frame`` from ``user`` (the topic's sender) changes; drops are counted."""
        kind = type(frame)
        if kind is Input:
            return self._input(user, frame, now)  # type: ignore[arg-type]
        if kind is Ping:
            return self._ping(user, frame, now)  # type: ignore[arg-type]
        if kind is Hello:
            return self._hello(user, frame, now)  # type: ignore[arg-type]
        if kind is Bye:
            return self._bye(user, frame)  # type: ignore[arg-type]
        self.drops[DropReason.UNEXPECTED_KIND] += 1
        return NO_EFFECTS

    def _input(self, user: str, frame: Input, now: float) -> Sequence[Effect]:
        seat = self._by_user.get(user)
        if seat is not None and frame.epoch == seat.epoch:  # the hot path
            last = seat.last_seq
            # outside the window is dropped, unless nothing was applied for stale_s while
            # this epoch kept sending: then a forged or corrupted seq must not lock the
            # player out, and this frame is the new base
            if (
                last is not None
                and not 1 <= (frame.seq - last) & _MASK < SEQ_WINDOW
                and now - seat.last_input < self._stale_s
            ):
                self.drops[DropReason.DUPLICATE if frame.seq == last else DropReason.OLD_SEQ] += 1
                return NO_EFFECTS
            if self._late(seat, frame.t, now):
                self.drops[DropReason.LATE] += 1
                return NO_EFFECTS
            seat.last_seq = frame.seq
            seat.last_rx = now
            seat.last_input = now
            seat.stale = False
            return (Apply(seat.number, user, frame),)
        if seat is not None:
            if self._is_dead(user, frame.epoch):
                return self._reject(user, frame.epoch, RejectCode.REPLACED)
            actions = self._replace(seat, frame.epoch, now, "input")
            self._first_input(seat, frame, now)
            return (*actions, Apply(seat.number, user, frame))
        taken = self._take(user, frame.epoch, now, "input")
        new_seat = self._by_user.get(user)
        if new_seat is None:
            return taken
        self._first_input(seat=new_seat, frame=frame, now=now)
        return (*taken, Apply(new_seat.number, user, frame))

    @staticmethod
    def _first_input(seat: _Seat, frame: Input, now: float) -> None:
        seat.last_seq = frame.seq
        seat.last_input = now
        seat.best = (int(now * 1e6) - frame.t) & _MASK
        seat.best_at = now

    def _late(self, seat: _Seat, t: int, now: float) -> bool:
        """Rule 9: is this Input's delay more than ``stale_ms`` over the epoch's best?

        The delay ``host_now - t`` holds the offset between the two clocks; the best
        (smallest) delay of the epoch is that offset plus the fastest trip, so the
        excess over it is how late the frame is. The best may rise by DRIFT_US_PER_S
        (two machines' clocks drift apart); frames late for LATE_RESYNC_S without
        catching up (a forged stamp once lowered the best) make the best start over.
        """
        delay = (int(now * 1e6) - t) & _MASK
        best = seat.best
        if best is None:
            seat.best = delay
            seat.best_at = now
            return False
        # drift is credited for at most DRIFT_SPAN_S at a time: a stall earns no slack
        gap = now - seat.best_at
        best += (gap if gap < DRIFT_SPAN_S else DRIFT_SPAN_S) * DRIFT_US_PER_S
        if best >= WRAP:
            best -= WRAP
        excess = delay - best  # both in [0, 2**32): bring it into [-2**31, 2**31)
        if excess >= HALF:
            excess -= WRAP
        elif excess < -HALF:
            excess += WRAP
        seat.best_at = now
        if excess <= self._stale_us:
            seat.best = delay if excess < 0 else best
            if seat.late_since is not None:
                seat.late_since = None
            return False
        seat.best = best
        since = seat.late_since
        if since is None:
            seat.late_since = now
            seat.late_excess = excess
            return True
        # a backlog drains faster than real time; a wrong best stays as late as it was
        if now - since >= LATE_RESYNC_S and seat.late_excess - excess < (now - since) * 5e5:
            seat.best = delay
            seat.late_since = None
            return False
        return True

    def _ping(self, user: str, frame: Ping, now: float) -> Sequence[Effect]:
        seat = self._by_user.get(user)
        if seat is not None and frame.epoch == seat.epoch:
            seat.last_rx = now
            return (Reply(user, Pong(frame.epoch, frame.t, seat.number), 0),)
        if not self._may_sit(user):
            return self._reject(user, frame.epoch, RejectCode.NOT_ALLOWED)
        if self._is_dead(user, frame.epoch):
            return self._reject(user, frame.epoch, RejectCode.REPLACED)
        return (Reply(user, Pong(frame.epoch, frame.t, 0), 0),)  # seat 0: no seat (yet)

    def _hello(self, user: str, frame: Hello, now: float) -> Sequence[Effect]:
        if frame.proto != PROTO:  # rule 3: never silence, one Reject(PROTOCOL) per epoch
            return self._reject(user, frame.epoch, RejectCode.PROTOCOL)
        seat = self._by_user.get(user)
        if seat is None:
            return self._take(user, frame.epoch, now, "hello")
        if frame.epoch == seat.epoch:  # a repeated Hello: the Welcome may have been lost
            seat.last_rx = now
            return (Reply(user, Welcome(frame.epoch, seat.number), 1),)
        if self._is_dead(user, frame.epoch):
            return self._reject(user, frame.epoch, RejectCode.REPLACED)
        old = seat.epoch
        replaced = self._replace(seat, frame.epoch, now, "hello")
        return (Neutral(seat.number, REASON_BYE, user, old), *replaced)

    def _bye(self, user: str, frame: Bye) -> Sequence[Effect]:
        seat = self._by_user.get(user)
        if seat is None:
            self.drops[DropReason.NOT_SEATED] += 1
            return NO_EFFECTS
        if frame.epoch != seat.epoch:  # an older process's Last Will: it never comes back
            if not self._is_dead(user, frame.epoch):
                seat.dead.append((user, frame.epoch))
            self.drops[DropReason.STALE_EPOCH] += 1
            return NO_EFFECTS
        epoch = seat.epoch
        seat.dead.append((user, epoch))
        self._free(seat)
        return (
            Neutral(seat.number, REASON_BYE, user, epoch),
            SeatChange("seat_freed", seat.number, user, epoch, "bye"),
        )

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> Sequence[Effect]:
        """The timers: neutral after ``stale_s`` of silence, the seat freed after ``idle_s``."""
        actions: list[Effect] = []
        for seat in self._seats:
            user = seat.user
            if user is None:
                continue
            silent = now - seat.last_rx
            if not seat.stale and silent >= self._stale_s:
                seat.stale = True
                actions.append(Neutral(seat.number, REASON_STALE, user, seat.epoch))
            if silent >= self._idle_s:
                epoch = seat.epoch
                self._free(seat)
                actions.append(SeatChange("seat_freed", seat.number, user, epoch, "idle"))
        return actions

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (monotonic seconds), or None."""
        deadline: float | None = None
        for seat in self._seats:
            if seat.user is None:
                continue
            due = seat.last_rx + (self._idle_s if seat.stale else self._stale_s)
            if deadline is None or due < deadline:
                deadline = due
        return deadline

    # ------------------------------------------------------------------ helpers

    def _may_sit(self, user: str) -> bool:
        return not self._allowed or user in self._allowed

    def _is_dead(self, user: str, epoch: int) -> bool:
        key = (user, epoch)
        return any(key in seat.dead for seat in self._seats)

    def _free_seat_for(self, user: str) -> _Seat | None:
        wanted = self._allowed.get(user)
        if wanted is not None:
            seat = self._by_number[wanted]
            return seat if seat.user is None else None
        for seat in self._seats:
            if seat.user is None and seat.reserved is None:
                return seat
        return None

    def _take(self, user: str, epoch: int, now: float, why: str) -> Sequence[Effect]:
        if not self._may_sit(user):
            return self._reject(user, epoch, RejectCode.NOT_ALLOWED)
        if self._is_dead(user, epoch):
            return self._reject(user, epoch, RejectCode.REPLACED)
        seat = self._free_seat_for(user)
        if seat is None:
            return self._reject(user, epoch, RejectCode.FULL)
        seat.user = user
        self._seat_epoch(seat, epoch, now)
        self._by_user[user] = seat
        self._rejected.pop(user, None)
        return (
            SeatChange("seat_taken", seat.number, user, epoch, why),
            Reply(user, Welcome(epoch, seat.number), 1),
        )

    def _replace(self, seat: _Seat, epoch: int, now: float, why: str) -> Sequence[Effect]:
        """The seat's user restarted: the new epoch takes over, the old one is dead."""
        user = seat.user
        assert user is not None
        seat.dead.append((user, seat.epoch))
        self._seat_epoch(seat, epoch, now)
        return (
            SeatChange("epoch_replaced", seat.number, user, epoch, why),
            Reply(user, Welcome(epoch, seat.number), 1),
        )

    @staticmethod
    def _seat_epoch(seat: _Seat, epoch: int, now: float) -> None:
        seat.epoch = epoch
        seat.last_seq = None
        seat.best = None
        seat.late_since = None
        seat.last_rx = now
        seat.stale = False

    def _free(self, seat: _Seat) -> None:
        if seat.user is not None:
            self._by_user.pop(seat.user, None)
        seat.user = None
        seat.epoch = 0
        seat.last_seq = None
        seat.stale = False

    def forget_reject(self, user: str, epoch: int, code: RejectCode) -> None:
        """That Reject was not sent after all (rate limited): answer the next frame again.

        So a guest whose Reject fell to the rate limit is answered on a later try (its
        Hello repeats every second), never left in silence.
        """
        if self._rejected.get(user) == (epoch, code):
            del self._rejected[user]

    def _reject(self, user: str, epoch: int, code: RejectCode) -> Sequence[Effect]:
        """Count the drop; answer Reject once per (epoch, code) of this user."""
        self.drops[_REJECT_DROPS[code]] += 1
        if self._rejected.get(user) == (epoch, code):
            return NO_EFFECTS
        if len(self._rejected) >= REJECT_MEMORY:
            self._rejected.clear()
        self._rejected[user] = (epoch, code)
        return (Reply(user, Reject(epoch, code, _REJECT_REASONS[code]), 1),)


_REJECT_DROPS: Final = {
    RejectCode.NOT_ALLOWED: DropReason.NOT_ALLOWED,
    RejectCode.FULL: DropReason.FULL,
    RejectCode.REPLACED: DropReason.STALE_EPOCH,
    RejectCode.PROTOCOL: DropReason.PROTOCOL,
}
_REJECT_REASONS: Final = {
    RejectCode.NOT_ALLOWED: "this user is not allowed on this host",
    RejectCode.FULL: "every seat is taken",
    RejectCode.REPLACED: "this session ended or a newer coplay-guest of this user took over",
    RejectCode.PROTOCOL: f"this host speaks coplay protocol {PROTO}; use a matching coplay-guest",
}


def merge_counts(*counters: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Several ``(reason, count)`` sources as one sorted dict (for logs)."""
    total: Counter[str] = Counter()
    for pairs in counters:
        for reason, n in pairs:
            total[reason] += n
    return dict(sorted(total.items()))
