"""The host daemon's wiring: link -> checks -> decode -> seat table -> queue -> sink.

Threads:

- paho's network thread runs :meth:`HostDaemon.on_message` for every frame on
  ``{prefix}/{session}/in/+``: size and retained checks, decode, the seat table
  and the queue, all without touching a device; replies (Welcome, Reject, Pong)
  and HostState go out from there too.
- the pad writer (:class:`~host.writer.PadWriter`) applies states to the sink and
  runs the stale/idle timers.
- the main thread (:meth:`HostDaemon.run`) waits for a stop request, pings
  systemd's watchdog, logs the status line and the drop counters, and on stop
  drives every pad neutral, publishes HostState offline (retained) and closes
  the pads (host rule 7).

Pads exist from start-up, one per seat, and stay through guest changes and
broker outages (rule 8): only :meth:`run`'s end closes them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

from host.intake import Intake
from host.notify import Notifier
from host.seats import DropReason, Effect, Reply, SeatChange, SeatTable, merge_counts
from host.sinks.base import REASON_SHUTDOWN, FrameMeta, Sink
from host.status import seat_lines, status_text
from host.writer import PadWriter
from relay.clock import Clock
from relay.config import HostSection
from relay.errors import CoplayError
from relay.frames import MAX_PAYLOAD, Drop, FrameCodec, HostState, Reject, RejectCode, Rumble
from relay.linkstatus import LinkLike, LinkState, LinkStatus, Message, MessageHandler
from relay.logs import Throttle
from relay.topics import Topics


class LinkFactory(Protocol):
    def __call__(
        self,
        *,
        on_message: MessageHandler,
        subscriptions: Sequence[tuple[str, int]],
        will: Message,
        on_connect: Callable[[], None],
        on_status: Callable[[LinkStatus], None],
    ) -> LinkLike: ...


class HostDaemon:
    """One host: its seats, pads, link and status."""

    def __init__(
        self,
        settings: HostSection,
        topics: Topics,
        sink: Sink,
        make_link: LinkFactory,
        clock: Clock,
        notifier: Notifier,
        *,
        codec: FrameCodec | None = None,
        logger: Any = None,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._sink = sink
        self._make_link = make_link
        self._clock = clock
        self._notifier = notifier
        self._codec = codec or FrameCodec()
        self._log = logger if logger is not None else structlog.get_logger("host")
        self.table = SeatTable(
            settings.seats,
            settings.allowed(),
            stale_s=settings.stale_ms / 1000,
            idle_s=settings.idle_s,
        )
        self.writer = PadWriter(self.table, sink, clock, on_actions=self._carry_out)
        self.intake = Intake()  # per-user frame budget, Reject limits (network thread)
        allowed = settings.allowed()
        self._allowed = frozenset(allowed) if allowed else None  # None: first come
        self._drops: Counter[str] = Counter()  # before the seat table (network thread only)
        self._throttle = Throttle(10.0)
        self._state_lock = threading.Lock()  # HostState publishes go out in order
        self._ready = threading.Event()
        self._link: LinkLike | None = None
        self._link_text = "starting"
        self._last_status = ""
        self._host_topic = topics.host

    # ------------------------------------------------------------------ network thread

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """One message on ``in/+`` (paho's network thread: never blocks on a device)."""
        if len(payload) > MAX_PAYLOAD:
            self._drop(DropReason.OVERSIZED, topic)
            return
        if retained:
            self._drop(DropReason.RETAINED, topic)
            return
        user = self._topics.input_user(topic)
        if user is None:
            self._drop(DropReason.BAD_TOPIC, topic)
            return
        now = self._clock.monotonic()
        if not self.intake.admit(user, len(payload), now):
            return  # counted there: one user's flood is dropped before decoding
        allowed = self._allowed
        if allowed is not None and user not in allowed and not self.intake.reject_due(user, now):
            self._drops[DropReason.NOT_ALLOWED] += 1  # rule 2: not decoded, not answered
            return
        frame = self._codec.decode(payload)
        if isinstance(frame, Drop):
            self._drop(frame.value, topic)
            return
        rest = self.writer.submit(user, frame, now)
        if rest:
            self._carry_out(rest)

    def _drop(self, reason: str, topic: str) -> None:
        self._drops[reason] += 1
        if self._throttle.allow(reason):
            self._log.info("frame_dropped", reason=reason, user=self._topics.input_user(topic))

    def _carry_out(self, actions: Sequence[Effect]) -> None:
        """Replies, seat changes and HostState (network or writer thread)."""
        seats_changed = False
        for action in actions:
            if isinstance(action, Reply):
                if isinstance(action.frame, Reject):
                    self._reject(action.user, action.frame, action.qos)
                else:
                    self._send(action.user, action.frame, action.qos)
            elif isinstance(action, SeatChange):
                seats_changed = True
                self._log.info(
                    action.event,
                    seat=action.seat,
                    user=action.user,
                    epoch=action.epoch,
                    why=action.why,
                )
        if seats_changed:
            self._publish_state()

    def _reject(self, user: str, frame: Reject, qos: int) -> None:
        """A Reject and its log line, within the per-user and global limits (rule 2)."""
        payload = self._codec.encode(frame)
        if not self.intake.may_reject(user, len(payload), self._clock.monotonic()):
            self.writer.forget_reject(user, frame.epoch, RejectCode(frame.code))
            return
        link = self._link
        if link is not None:
            link.publish(self._topics.output(user), payload, qos)
        self._log.info("guest_rejected", user=user, code=frame.code, why=frame.reason)

    def _send(self, user: str, frame: Any, qos: int) -> None:
        link = self._link
        if link is not None:
            link.publish(self._topics.output(user), self._codec.encode(frame), qos)

    def _publish_state(self) -> None:
        link = self._link
        if link is None:
            return
        with self._state_lock:
            with self.writer.cond:
                seats = self.table.occupancy()
            link.publish(self._host_topic, self._codec.encode(HostState(True, seats)), 1, True)

    def on_connect(self) -> None:
        """Connected and subscribed: HostState online; the first time, tell systemd."""
        self._publish_state()
        if not self._ready.is_set():
            self._ready.set()
            self._notifier.notify("READY=1")
            self._log.info("host_ready", topic=self._topics.inputs)

    def on_status(self, status: LinkStatus) -> None:
        self._link_text = status.state.value
        if status.reason and status.state is not LinkState.CONNECTED:
            self._link_text += f" ({status.reason})"

    def on_rumble(self, seat: int, frame: Rumble) -> None:
        """A game's rumble on seat ``seat``'s pad: forward it to that seat's guest."""
        with self.writer.cond:
            user = self.table.user_at(seat)
        if user is not None:
            self._send(user, frame, 0)

    # ------------------------------------------------------------------ main thread

    def offline_state(self) -> Message:
        free = [(seat, "") for seat in self.table.seats]
        return Message(self._host_topic, self._codec.encode(HostState(False, free)), 1, True)

    def run(self, stop: threading.Event) -> int:
        """Open the pads, connect, serve until ``stop`` is set; then shut down cleanly."""
        try:
            for seat in self._settings.seats:
                self._sink.open(seat)
        except BaseException:
            self._sink.close()
            raise
        if self.table.first_come:
            self._log.warning(
                "first_come_first_served",
                hint="allow is empty: any user who can reach the session may take a seat",
            )
        self._log.info(
            "host_started",
            seats=list(self._settings.seats),
            allow=list(self._settings.allow),
            stale_ms=self._settings.stale_ms,
            idle_s=self._settings.idle_s,
        )
        self.writer.start()
        failure: CoplayError | None = None
        try:
            self._link = self._make_link(
                on_message=self.on_message,
                subscriptions=[(self._topics.inputs, 1)],
                will=self.offline_state(),
                on_connect=self.on_connect,
                on_status=self.on_status,
            )
            self._link.start()
            failure = self._serve(stop)
        finally:
            self._shutdown()
        if failure is not None:
            raise failure
        return 0

    def _serve(self, stop: threading.Event) -> CoplayError | None:
        link = self._link
        assert link is not None
        interval = self._settings.status_interval_s
        watchdog_s = self._notifier.watchdog_s
        now = self._clock.monotonic()
        next_status = now + interval if interval > 0 else None
        last_status = now
        next_watchdog = now
        while True:
            now = self._clock.monotonic()
            if watchdog_s is not None and now >= next_watchdog:
                if self._healthy(link, now, watchdog_s):
                    self._notifier.notify("WATCHDOG=1")
                next_watchdog = now + watchdog_s
            if next_status is not None and now >= next_status:
                self._status(now - last_status)
                last_status = now
                next_status = now + interval
            self._notify_status()
            failure = link.failure
            if failure is not None:  # an AuthError ends in exit 77
                return failure
            if not self.writer.alive:
                return CoplayError(f"the pad writer stopped: {self.writer.failed!r}")
            failing = self.writer.failing_since
            if failing is not None and now - failing >= self._settings.sink_fail_s:
                return CoplayError(
                    f"every pad write failed for {self._settings.sink_fail_s:g} s "
                    f"({self.writer.sink_error}); exiting so the service restarts"
                )
            waits = [1.0]
            if watchdog_s is not None:
                waits.append(next_watchdog - now)
            if next_status is not None:
                waits.append(next_status - now)
            if stop.wait(max(0.01, min(waits))):
                return None

    def _healthy(self, link: LinkLike, now: float, watchdog_s: float) -> bool:
        writer_ok = self.writer.alive and now - self.writer.beat < max(2 * watchdog_s, 2.0)
        sink_ok = self.writer.failing_since is None
        return writer_ok and sink_ok and not link.status.state.final

    def _sink_text(self) -> str:
        """ "" while pad writes succeed, else what failed (for the status line)."""
        if self.writer.failing_since is None:
            return ""
        return f"sink failing ({self.writer.sink_error})"

    def drops(self) -> dict[str, int]:
        with self.writer.cond:
            table = list(self.table.drops.items())
            queue = self.writer.queue
            extra = [("queue_overflow", queue.overflow)] if queue.overflow else []
        over = self.intake.over_budget
        if over:
            extra.append(("over_budget", over))
        return merge_counts(list(self._drops.items()), table, extra)

    def _status(self, elapsed: float) -> None:
        stats = self.writer.take_stats()
        with self.writer.cond:
            occupancy = self.table.occupancy()
            stale = {seat: self.table.is_stale(seat) for seat, _ in occupancy}
            coalesced = self.writer.queue.coalesced
        lines = seat_lines(
            occupancy,
            {seat: s.frames for seat, s in stats.items()},
            {seat: s.latencies for seat, s in stats.items()},
            stale,
            elapsed,
        )
        drops = self.drops()
        self._log.info(
            "host_status",
            status=status_text(lines, self._link_text, drops, self._sink_text()),
            seats=[
                {"seat": x.seat, "user": x.user or None, "fps": x.fps, "lat_p50_ms": x.lat_p50_ms}
                for x in lines
            ],
            link=self._link_text,
            drops=drops,
            coalesced=coalesced,
            sink_errors=self.writer.sink_errors,
            intake=self.intake.counts(),
        )

    def _notify_status(self) -> None:
        with self.writer.cond:
            occupancy = self.table.occupancy()
        seats = ", ".join(f"P{seat} {user or 'free'}" for seat, user in occupancy)
        text = f"STATUS={seats}; link {self._link_text}"
        sink = self._sink_text()
        if sink:
            text += f"; {sink}"
        if text != self._last_status:
            self._last_status = text
            self._notifier.notify(text)

    def _shutdown(self) -> None:
        """Rule 7: every pad neutral, HostState offline (retained), pads closed."""
        self._notifier.notify("STOPPING=1")
        self.writer.stop()
        with self.writer.cond:
            owners = {
                seat: (self.table.user_at(seat), self.table.epoch_at(seat))
                for seat in self.table.seats
            }
        for seat, (user, epoch) in owners.items():
            try:
                self._sink.neutral(
                    seat,
                    REASON_SHUTDOWN,
                    FrameMeta(user, epoch, None, None, self._clock.monotonic_ns(), None),
                )
            except Exception:
                self._log.exception("pad_neutral_failed", seat=seat)
        if self._link is not None:
            self._link.stop(final=[self.offline_state()])
        self._sink.close()
        self._log.info("host_stopped", drops=self.drops())
