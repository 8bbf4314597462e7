"""The virtual 2P input queue between paho's network thread and the pads.

:class:`PadQueue` is the data structure (no locking of its own): one bounded
deque per seat, so each seat keeps its order. A new state coalesces with the
state queued just before it only when both hold the same buttons, so the pad
skips an intermediate stick position under overload but never a button edge:
a press followed by its release always reaches the pad. Neutral items are
never merged. Past ``capacity`` items for one seat (a sink stuck for seconds)
the oldest item is dropped and counted as ``queue_overflow``.

:class:`PadWriter` is the consumer thread. It shares one
:class:`threading.Condition` with the network thread, which calls
:meth:`PadWriter.submit` (the seat table and the queue change under that lock,
nothing blocks on a device there). The writer applies queued states to the sink
and runs the seat table's stale/idle timers: it waits on the condition with a
timeout until the next deadline, so the timers fire even when no frame arrives.

A sink write that raises OSError (a full disk, a vanished device) is counted,
not fatal: :attr:`PadWriter.failing_since` holds when the current run of failed
writes began (None after a write went through) and :attr:`PadWriter.sink_error`
the last error, so the daemon can say so in its status, stop feeding the
watchdog and, if it lasts, exit for systemd to restart it.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple

import structlog

from host.seats import Apply, Effect, Neutral, SeatTable
from host.sinks.base import FrameMeta, Sink
from relay.clock import Clock
from relay.frames import Frame, RejectCode
from relay.logs import Throttle
from relay.serial32 import elapsed_us, us32

DEFAULT_CAPACITY: Final = 4096
HEARTBEAT_S: Final = 0.5  # the writer wakes at least this often (watchdog, stop)

QueueItem = Apply | Neutral


class PadQueue:
    """Per-seat FIFO of pad states; merges consecutive states only when no button edge is lost."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._seats: dict[int, deque[QueueItem]] = {}
        self._size = 0
        self.coalesced = 0
        self.overflow = 0

    def __len__(self) -> int:
        return self._size

    def push(self, item: QueueItem) -> None:
        queue = self._seats.get(item.seat)
        if queue is None:
            queue = self._seats[item.seat] = deque()
        if queue and type(item) is Apply:
            tail = queue[-1]
            if type(tail) is Apply and tail.frame.buttons == item.frame.buttons:
                queue[-1] = item  # only stick/trigger positions in between are skipped
                self.coalesced += 1
                return
        queue.append(item)
        self._size += 1
        if len(queue) > self._capacity:
            queue.popleft()
            self._size -= 1
            self.overflow += 1

    def pop_all(self) -> list[QueueItem]:
        """Everything queued, each seat's items in order (seats one after another)."""
        items: list[QueueItem] = []
        for queue in self._seats.values():
            items.extend(queue)
            queue.clear()
        self._size = 0
        return items


# Carries out the actions that are not pad states (replies, HostState, logs).
EffectHandler = Callable[[Sequence[Effect]], None]


class SeatStats(NamedTuple):
    frames: int
    latencies: tuple[int, ...]


class PadWriter:
    """The consumer thread: queued states -> sink, plus the stale and idle timers."""

    def __init__(
        self,
        table: SeatTable,
        sink: Sink,
        clock: Clock,
        *,
        on_actions: EffectHandler,
        queue: PadQueue | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        direct: bool | None = None,
    ) -> None:
        self.cond = threading.Condition()
        # Hand states to the sink on the submitting thread when no write is in progress:
        # only for sinks whose writes never block (see Sink.nonblocking).
        self._direct = bool(getattr(sink, "nonblocking", False)) if direct is None else direct
        self._busy = False  # someone is writing popped items to the sink right now
        self.table = table
        self.queue = queue if queue is not None else PadQueue()
        self._sink = sink
        self._clock = clock
        self._on_actions = on_actions
        self._heartbeat_s = heartbeat_s
        self._stop = False
        self._thread: threading.Thread | None = None
        self._log = structlog.get_logger("host.writer")
        self._throttle = Throttle(10.0)
        self.beat = clock.monotonic()  # last time the loop ran (watchdog)
        # per seat, states applied and their latencies since take_stats (swapped, not locked)
        self._applied: Counter[int] = Counter()
        self._latencies: dict[int, deque[int]] = self._new_latencies()
        self.failed: BaseException | None = None
        self.sink_errors = 0  # writes that raised OSError
        self.sink_error = ""  # the last one, as text
        self.failing_since: float | None = None  # monotonic s; None while writes succeed

    # ------------------------------------------------------------------ producer side

    def submit(self, user: str, frame: Frame, now: float) -> Sequence[Effect]:
        """From the network thread: run ``frame`` through the table; queue pad states.

        Returns the other actions (replies, seat changes) for the caller to carry out
        outside the lock.
        """
        with self.cond:
            actions = self.table.on_frame(user, frame, now)
            if not actions:
                return actions
            rest = self._enqueue(actions)
            if not self._direct or self._busy or self._stop or not len(self.queue):
                self.cond.notify_all()
                return rest
            items = self.queue.pop_all()
            self._busy = True
        try:
            self._write(items)
        finally:
            with self.cond:
                self._busy = False
                self.cond.notify_all()  # the writer (items queued meanwhile) and a waiting stop
        return rest

    def forget_reject(self, user: str, epoch: int, code: RejectCode) -> None:
        """The table's :meth:`~host.seats.SeatTable.forget_reject`, under the table's lock."""
        with self.cond:
            self.table.forget_reject(user, epoch, code)

    def _enqueue(self, actions: Iterable[Effect]) -> list[Effect]:
        rest: list[Effect] = []
        for action in actions:
            kind = type(action)
            if kind is Apply or kind is Neutral:
                self.queue.push(action)  # type: ignore[arg-type]
            else:
                rest.append(action)
        return rest

    # ------------------------------------------------------------------ consumer side

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pad-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after it applied what is queued."""
        with self.cond:
            self._stop = True
            self.cond.notify_all()
            self.cond.wait_for(lambda: not self._busy, timeout)  # a direct write in flight
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.failed = exc
            self._log.exception("pad_writer_failed")

    def _loop(self) -> None:
        cond = self.cond
        while True:
            with cond:
                while True:
                    now = self._clock.monotonic()
                    self.beat = now
                    rest = self._enqueue(self.table.tick(now))
                    if rest or self._stop or (len(self.queue) and not self._busy):
                        break
                    deadline = self.table.next_deadline()
                    wait = self._heartbeat_s if deadline is None else deadline - now
                    cond.wait(min(max(wait, 0.0), self._heartbeat_s) + 0.0005)
                # one writer at a time: a direct write in flight finishes first (it notifies)
                cond.wait_for(lambda: not self._busy)
                items = self.queue.pop_all()
                stopping = self._stop
                self._busy = bool(items)
            if items:
                try:
                    self._write(items)
                finally:
                    with cond:
                        self._busy = False
                        cond.notify_all()
            if rest:
                self._on_actions(rest)
            if stopping:
                return

    def _write(self, items: list[QueueItem]) -> None:
        sink = self._sink
        clock = self._clock
        for item in items:
            now_ns = clock.monotonic_ns()
            try:
                if type(item) is Apply:
                    frame = item.frame
                    lat = elapsed_us(us32(now_ns), frame.t)
                    sink.apply(
                        item.seat,
                        frame.state,
                        FrameMeta(item.user, frame.epoch, frame.seq, frame.t, now_ns, lat),
                    )
                    self._applied[item.seat] += 1
                    if lat is not None:
                        self._latencies[item.seat].append(lat)
                else:
                    neutral: Neutral = item  # type: ignore[assignment]
                    sink.neutral(
                        neutral.seat,
                        neutral.reason,
                        FrameMeta(neutral.user, neutral.epoch, None, None, now_ns, None),
                    )
            except OSError as exc:
                self._sink_failed(exc, now_ns)
            else:
                self.failing_since = None

    def _sink_failed(self, exc: OSError, now_ns: int) -> None:
        self.sink_errors += 1
        self.sink_error = exc.strerror or str(exc) or type(exc).__name__
        if self.failing_since is None:
            self.failing_since = now_ns / 1e9
            if self._throttle.allow("sink_failing"):
                self._log.error("sink_failing", error=self.sink_error)

    def _new_latencies(self) -> dict[int, deque[int]]:
        return {seat: deque(maxlen=1024) for seat in self.table.seats}

    def take_stats(self) -> dict[int, SeatStats]:
        """States applied and latencies (us) per seat since the last call.

        The writer keeps counting into fresh containers swapped in here; a count
        racing with the swap may land in either period, which a status line can bear.
        """
        applied, self._applied = self._applied, Counter()
        latencies, self._latencies = self._latencies, self._new_latencies()
        return {
            seat: SeatStats(applied.get(seat, 0), tuple(lats)) for seat, lats in latencies.items()
        }
