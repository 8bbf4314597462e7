"""The pad writer: the one owner of the seat table, the pad queue and the pad writes.

:class:`PadWriter` holds the :class:`~host.seats.SeatTable` and the
:class:`~host.padqueue.PadQueue` under one private lock; nobody else touches
either. paho's network thread calls :meth:`PadWriter.submit`: the table decides
and the queue takes the pad states under that lock, nothing blocks on a device
there. The writer's own thread applies queued states to the sink and runs the
table's stale/idle timers: it sleeps until the next deadline, so the timers
fire even when no frame arrives.

Who writes to the sink: the writer thread, or, for a sink whose writes never
block (``Sink.nonblocking``), the submitting thread itself when no write is in
progress (the direct path: no thread hop, no wake-up). One writer at a time.

The writer thread is woken only when it has work: states queued for it, a
stop, a direct write it waits for, or a timer that moved sooner than it would
wake by itself (a seat taken). Its wake-ups are counted (:attr:`WriterStats.wakeups`).

A sink write that raises OSError (a full disk, a vanished device) is counted,
not fatal: :attr:`WriterStats.failing_since` holds when the current run of
failed writes began (None after a write went through), so the daemon can say
so in its status, stop feeding the watchdog and, if it lasts, exit for systemd
to restart it. Everything others may read comes out of :meth:`PadWriter.stats`
and :meth:`PadWriter.take_seat_stats`, copies made under the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import structlog

from host.effects import Apply, Effect, Neutral, PadItem
from host.faults import Faults
from host.padqueue import PadQueue
from host.seats import SeatTable
from host.sinks.base import REASON_SHUTDOWN, FrameMeta, Sink
from host.writerstats import SeatCounters, SeatStats, SinkHealth, WriterStats, WriteTally
from relay.clock import Clock
from relay.frames import Frame, RejectCode
from relay.serial32 import elapsed_us, us32

HEARTBEAT_S: Final = 0.5  # the writer wakes at least this often (watchdog, stop)
_NEVER: Final = float("-inf")

# Carries out the effects that are not pad states (replies, HostState, logs).
EffectHandler = Callable[[Sequence[Effect]], None]


class PadWriter:
    """The seat table and pad queue behind one lock, and the thread that drains the queue."""

    def __init__(
        self,
        table: SeatTable,
        sink: Sink,
        clock: Clock,
        faults: Faults,
        *,
        queue: PadQueue | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        direct: bool | None = None,
    ) -> None:
        self._cond = threading.Condition()
        self._table = table
        self._queue = queue if queue is not None else PadQueue()
        self._sink = sink
        self._clock = clock
        self._faults = faults
        # the direct path, only for sinks whose writes never block (see Sink.nonblocking)
        self._direct = bool(getattr(sink, "nonblocking", False)) if direct is None else direct
        self._stale_s = table.stale_s
        self._heartbeat_s = heartbeat_s
        self._thread: threading.Thread | None = None
        self._stop = False
        self._busy = False  # someone is writing popped items to the sink right now
        self._idle_wanted = False  # someone waits for that write to end: notify them
        self._wake_at = _NEVER  # while the thread sleeps: when it wakes by itself
        self._wakeups = 0
        self._beat = clock.monotonic()  # the thread's last pass (watchdog)
        self._failed = ""  # what ended the thread, if anything did
        self._health = SinkHealth(structlog.get_logger("host.writer"))
        self._per_seat = SeatCounters([view.seat for view in table.views()])

    # ------------------------------------------------------------------ any thread

    def submit(self, user: str, frame: Frame, now: float) -> Sequence[Effect]:
        """From the network thread: run ``frame`` through the table; queue (or write) pad states.

        Returns the other effects (replies, seat changes) for the caller to carry out.
        """
        with self._cond:
            effects = self._table.on_frame(user, frame, now)
            if not effects:
                return effects
            rest = self._enqueue(effects)
            if now + self._stale_s < self._wake_at:
                self._cond.notify()  # a timer now falls due before the thread would wake
            if not len(self._queue):
                return rest
            if not self._direct or self._busy or self._stop:
                self._cond.notify()  # the writer thread has work
                return rest
            items = self._queue.pop_all()
            self._busy = True
        self._write(items)
        return rest

    def forget_reject(self, user: str, epoch: int, code: RejectCode) -> None:
        """The table's :meth:`~host.seats.SeatTable.forget_reject`."""
        with self._cond:
            self._table.forget_reject(user, epoch, code)

    def user_at(self, seat: int) -> str | None:
        with self._cond:
            return self._table.user_at(seat)

    def occupancy(self) -> list[tuple[int, str]]:
        """``[(seat, user or "")]`` in config order, as HostState carries it."""
        with self._cond:
            return self._table.occupancy()

    def stats(self) -> WriterStats:
        """The seats, the counters and the sink's health, copied under the lock."""
        with self._cond:
            queue = self._queue.counts()
            drops = self._table.drops()
            if queue.overflow:
                drops["queue_overflow"] = queue.overflow
            return WriterStats(
                seats=self._table.views(),
                drops=drops,
                coalesced=queue.coalesced,
                wakeups=self._wakeups,
                sink=self._health.snapshot(),
                beat=self._beat,
                alive=self._thread is not None and self._thread.is_alive(),
                failed=self._failed,
            )

    def take_seat_stats(self) -> dict[int, SeatStats]:
        """States applied and their latencies (us) per seat since the last call."""
        with self._cond:
            return self._per_seat.take()

    # ------------------------------------------------------------------ the thread

    def start(self, on_effects: EffectHandler) -> None:
        """Start the thread; effects of the timers (a seat freed) go to ``on_effects``."""
        self._thread = threading.Thread(
            target=self._run, args=(on_effects,), name="pad-writer", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after it applied what is queued; then every pad neutral (rule 7)."""
        with self._cond:
            self._stop = True
            self._idle_wanted = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._busy, timeout)  # a direct write in flight
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            views = self._table.views()
        for view in views:  # one by one: a pad that raises must not keep the others from it
            try:
                self._write([Neutral(view.seat, REASON_SHUTDOWN, view.user, view.epoch)])
            except Exception as exc:
                self._faults.record("pad_neutral", exc)

    def _run(self, on_effects: EffectHandler) -> None:
        try:
            self._loop(on_effects)
        except BaseException as exc:
            with self._cond:
                self._failed = repr(exc)
            self._faults.record("pad_writer", exc)

    def _loop(self, on_effects: EffectHandler) -> None:
        while True:
            with self._cond:
                rest = self._await_work()
                items = self._queue.pop_all()
                stopping = self._stop
                self._busy = bool(items)
            if items:
                self._write(items)
            if rest:
                try:
                    on_effects(rest)
                except Exception as exc:
                    self._faults.record("on_effects", exc)
            if stopping:
                return

    def _await_work(self) -> list[Effect]:
        """Under the lock: fire the due timers, sleep until there is something to do."""
        rest: list[Effect] = []
        while True:
            now = self._clock.monotonic()
            self._beat = now
            rest.extend(self._enqueue(self._table.tick(now)))
            ready = bool(rest) or self._stop or bool(len(self._queue))
            if ready and not self._busy:
                return rest
            if ready:  # one writer at a time: the direct write in flight notifies when done
                self._idle_wanted = True
                wait = self._heartbeat_s
            else:
                deadline = self._table.next_deadline()
                wait = self._heartbeat_s if deadline is None else deadline - now
                wait = min(max(wait, 0.0), self._heartbeat_s) + 0.0005
            self._wake_at = now + wait
            self._cond.wait(wait)
            self._wake_at = _NEVER
            self._wakeups += 1

    # ------------------------------------------------------------------ writing

    def _enqueue(self, effects: Iterable[Effect]) -> list[Effect]:
        rest: list[Effect] = []
        for effect in effects:
            if isinstance(effect, Apply | Neutral):
                self._queue.push(effect)
            else:
                rest.append(effect)
        return rest

    def _write(self, items: list[PadItem]) -> None:
        """Hand ``items`` to the sink outside the lock; count what happened under it."""
        tally = WriteTally()
        try:
            write_items(self._sink, self._clock, items, tally)
        finally:
            with self._cond:
                self._written(tally)

    def _written(self, tally: WriteTally) -> None:
        """Under the lock, after a write: count it, let waiters and queued items go on."""
        self._busy = False
        self._per_seat.add(tally)
        self._health.add(tally)
        if self._idle_wanted or len(self._queue):
            self._idle_wanted = False
            self._cond.notify_all()  # the thread (items queued meanwhile) and a waiting stop


def write_items(sink: Sink, clock: Clock, items: list[PadItem], tally: WriteTally) -> None:
    """Hand ``items`` to the sink in order (one writer at a time, outside the lock)."""
    for item in items:
        now_ns = clock.monotonic_ns()
        try:
            match item:
                case Apply(seat=seat, user=user, frame=frame):
                    lat = elapsed_us(us32(now_ns), frame.t)
                    meta = FrameMeta(user, frame.epoch, frame.seq, frame.t, now_ns, lat)
                    sink.apply(seat, frame.state, meta)
                    tally.applied.append((seat, lat))
                case Neutral(seat=seat, reason=reason, user=user, epoch=epoch):
                    sink.neutral(seat, reason, FrameMeta(user, epoch, None, None, now_ns, None))
        except OSError as exc:
            tally.failed(exc, now_ns)
        else:
            tally.succeeded()
