"""The seat table: who sits where, which frames count, and when a pad must go neutral.

Pure logic, no threads, no MQTT, no clock of its own: every method takes
``now`` (monotonic seconds) and returns effects (:mod:`host.effects`) for the
caller to carry out, so host rules 2-6 of DESIGN are unit-testable with plain
values. Its one owner, :class:`host.writer.PadWriter`, calls it under its lock.

Frames that are dropped return no effect and are counted by reason
(:class:`~host.drops.HostDrop`), read with :meth:`SeatTable.drops`. Beside
the table: :class:`Seat` (one seat's state and the per-frame checks of rules 4
and 9, the latter in :mod:`host.lateness`) and :mod:`host.rejects` (one Reject
per user, epoch and code).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple

from host.allowlist import Allowlist
from host.drops import HostDrop
from host.effects import NO_EFFECTS, Apply, Effect, Neutral, Reply, SeatChange
from host.lateness import LateFilter
from host.rejects import REJECT_DROPS, RejectOnce
from host.sinks.base import REASON_BYE, REASON_STALE
from relay.frames import PROTO, Bye, Frame, Hello, Input, Ping, Pong, RejectCode, Welcome
from relay.serial32 import WRAP

REMEMBER_EPOCHS: Final = 8  # ended/replaced epochs kept per seat, never accepted again
SEQ_WINDOW: Final = 1 << 16  # rule 4: (seq - last) mod 2**32 in [1, SEQ_WINDOW) is newer
_MASK: Final = WRAP - 1


class SeatView(NamedTuple):
    """One seat as others may see it (a copy)."""

    seat: int
    user: str | None
    epoch: int | None  # None while free
    stale: bool


class Seat:
    """One seat: who sits there, in which epoch, and the checks each of its Inputs passes."""

    __slots__ = (
        "_stale_s",
        "dead",
        "epoch",
        "last_input",
        "last_rx",
        "last_seq",
        "late",
        "number",
        "stale",
        "user",
    )

    def __init__(self, number: int, stale_s: float) -> None:
        self.number = number
        self._stale_s = stale_s
        self.user: str | None = None
        self.epoch = 0
        self.last_seq: int | None = None
        self.last_rx = 0.0  # when an Input or Ping of this epoch last arrived
        self.last_input = 0.0  # when an Input of this epoch was last applied
        self.stale = False
        self.dead: deque[tuple[str, int]] = deque(maxlen=REMEMBER_EPOCHS)
        self.late = LateFilter(stale_s)

    def check(self, frame: Input, now: float) -> HostDrop | None:
        """Rules 4 and 9 for an Input of the current epoch: None = apply it (remembered)."""
        last = self.last_seq
        # outside the window is dropped, unless nothing was applied for stale_s while
        # this epoch kept sending: then a forged or corrupted seq must not lock the
        # player out, and this frame is the new base
        if (
            last is not None
            and not 1 <= (frame.seq - last) & _MASK < SEQ_WINDOW
            and now - self.last_input < self._stale_s
        ):
            return HostDrop.DUPLICATE if frame.seq == last else HostDrop.OLD_SEQ
        if self.late.is_late(frame.t, now):
            return HostDrop.LATE
        self.last_seq = frame.seq
        self.last_rx = now
        self.last_input = now
        self.stale = False
        return None

    def first_input(self, frame: Input, now: float) -> None:
        """The epoch's first Input: applied as it is, and the base for the next ones."""
        self.last_seq = frame.seq
        self.last_input = now
        self.late.start(frame.t, now)

    def begin(self, user: str, epoch: int, now: float) -> None:
        """``user`` sits here with ``epoch`` (a new guest, or the same one restarted)."""
        if self.user is not None:
            self.dead.append((self.user, self.epoch))  # the old epoch never comes back
        self.user = user
        self.epoch = epoch
        self.last_seq = None
        self.late.reset()
        self.last_rx = now
        self.stale = False

    def free(self, *, dead: bool) -> None:
        """Nobody sits here; ``dead``: the epoch ended for good (Bye)."""
        if dead and self.user is not None:
            self.dead.append((self.user, self.epoch))
        self.user = None
        self.epoch = 0
        self.last_seq = None
        self.stale = False

    def due(self, idle_s: float) -> float:
        """When the timers next have something to do for this (taken) seat."""
        return self.last_rx + (idle_s if self.stale else self._stale_s)

    def view(self) -> SeatView:
        return SeatView(self.number, self.user, self.epoch if self.user else None, self.stale)


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
        self._seats = [Seat(n, stale_s) for n in seats]
        self._by_number = {seat.number: seat for seat in self._seats}
        self._by_user: dict[str, Seat] = {}
        self._allow = Allowlist(allowed)
        self._stale_s = stale_s
        self._idle_s = idle_s
        self._rejects = RejectOnce()
        self._drops: Counter[str] = Counter()

    # ------------------------------------------------------------------ queries

    @property
    def first_come(self) -> bool:
        """True when ``allow`` is empty: any user may take a free seat."""
        return self._allow.first_come

    @property
    def stale_s(self) -> float:
        return self._stale_s

    def occupancy(self) -> list[tuple[int, str]]:
        """``[(seat, user or "")]`` in config order, as HostState carries it."""
        return [(seat.number, seat.user or "") for seat in self._seats]

    def views(self) -> tuple[SeatView, ...]:
        """Every seat: who, which epoch, silent or not (copies, config order)."""
        return tuple(seat.view() for seat in self._seats)

    def user_at(self, seat: int) -> str | None:
        found = self._by_number.get(seat)
        return found.user if found is not None else None

    def drops(self) -> dict[str, int]:
        """Frames dropped here so far, by reason (a copy)."""
        return dict(self._drops)

    # ------------------------------------------------------------------ frames

    def on_frame(self, user: str, frame: Frame, now: float) -> Sequence[Effect]:
        """What ``frame`` from ``user`` (the topic's sender) changes; drops are counted."""
        match frame:
            case Input():
                return self._input(user, frame, now)
            case Ping():
                return self._ping(user, frame, now)
            case Hello():
                return self._hello(user, frame, now)
            case Bye():
                return self._bye(user, frame)
        self._drops[HostDrop.UNEXPECTED_KIND] += 1
        return NO_EFFECTS

    def _input(self, user: str, frame: Input, now: float) -> Sequence[Effect]:
        seat = self._by_user.get(user)
        if seat is not None and frame.epoch == seat.epoch:  # the hot path
            dropped = seat.check(frame, now)
            if dropped is not None:
                self._drops[dropped] += 1
                return NO_EFFECTS
            return (Apply(seat.number, user, frame),)
        if seat is not None:
            if self._is_dead(user, frame.epoch):
                return self._reject(user, frame.epoch, RejectCode.REPLACED)
            effects = self._replace(seat, frame.epoch, now, "input")
            seat.first_input(frame, now)
            return (*effects, Apply(seat.number, user, frame))
        taken = self._take(user, frame.epoch, now, "input")
        new_seat = self._by_user.get(user)
        if new_seat is None:
            return taken
        new_seat.first_input(frame, now)
        return (*taken, Apply(new_seat.number, user, frame))

    def _ping(self, user: str, frame: Ping, now: float) -> Sequence[Effect]:
        seat = self._by_user.get(user)
        if seat is not None and frame.epoch == seat.epoch:
            seat.last_rx = now
            return (Reply(user, Pong(frame.epoch, frame.t, seat.number), 0),)
        if not self._allow.may_sit(user):
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
            self._drops[HostDrop.NOT_SEATED] += 1
            return NO_EFFECTS
        if frame.epoch != seat.epoch:  # an older process's Last Will: it never comes back
            if not self._is_dead(user, frame.epoch):
                seat.dead.append((user, frame.epoch))
            self._drops[HostDrop.STALE_EPOCH] += 1
            return NO_EFFECTS
        epoch = seat.epoch
        self._free(seat, dead=True)
        return (
            Neutral(seat.number, REASON_BYE, user, epoch),
            SeatChange("seat_freed", seat.number, user, epoch, "bye"),
        )

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> Sequence[Effect]:
        """The timers: neutral after ``stale_s`` of silence, the seat freed after ``idle_s``."""
        effects: list[Effect] = []
        for seat in self._seats:
            user = seat.user
            if user is None:
                continue
            silent = now - seat.last_rx
            if not seat.stale and silent >= self._stale_s:
                seat.stale = True
                effects.append(Neutral(seat.number, REASON_STALE, user, seat.epoch))
            if silent >= self._idle_s:
                epoch = seat.epoch
                self._free(seat, dead=False)
                effects.append(SeatChange("seat_freed", seat.number, user, epoch, "idle"))
        return effects

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (monotonic seconds), or None."""
        dues = [seat.due(self._idle_s) for seat in self._seats if seat.user is not None]
        return min(dues) if dues else None

    # ------------------------------------------------------------------ seating

    def _is_dead(self, user: str, epoch: int) -> bool:
        key = (user, epoch)
        return any(key in seat.dead for seat in self._seats)

    def _take(self, user: str, epoch: int, now: float, why: str) -> Sequence[Effect]:
        if not self._allow.may_sit(user):
            return self._reject(user, epoch, RejectCode.NOT_ALLOWED)
        if self._is_dead(user, epoch):
            return self._reject(user, epoch, RejectCode.REPLACED)
        free = self._allow.seat_for(user, [s.number for s in self._seats if s.user is None])
        if free is None:
            return self._reject(user, epoch, RejectCode.FULL)
        seat = self._by_number[free]
        seat.begin(user, epoch, now)
        self._by_user[user] = seat
        self._rejects.seated(user)
        return (
            SeatChange("seat_taken", seat.number, user, epoch, why),
            Reply(user, Welcome(epoch, seat.number), 1),
        )

    def _replace(self, seat: Seat, epoch: int, now: float, why: str) -> Sequence[Effect]:
        """The seat's user restarted: the new epoch takes over, the old one is dead."""
        user = seat.user
        assert user is not None
        seat.begin(user, epoch, now)
        return (
            SeatChange("epoch_replaced", seat.number, user, epoch, why),
            Reply(user, Welcome(epoch, seat.number), 1),
        )

    def _free(self, seat: Seat, *, dead: bool) -> None:
        if seat.user is not None:
            self._by_user.pop(seat.user, None)
        seat.free(dead=dead)

    def forget_reject(self, user: str, epoch: int, code: RejectCode) -> None:
        """That Reject was held back (rate limited): answer the next try, never silence."""
        self._rejects.forget(user, epoch, code)

    def _reject(self, user: str, epoch: int, code: RejectCode) -> Sequence[Effect]:
        """Count the drop; answer Reject once per (epoch, code) of this user."""
        self._drops[REJECT_DROPS[code]] += 1
        return self._rejects.reply(user, epoch, code)
