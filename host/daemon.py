"""The host daemon: link -> checks -> decode -> pad writer (seat table, queue) -> sink.

Its collaborators come from the entry point (:func:`host.cli.serve`) as
:class:`~host.parts.HostParts`: the pad writer (which owns the seat table), the
sink, a link factory, the clock, the notifier, the intake budgets and the fault
counter. Threads, and what each owns:

- paho's network thread runs :meth:`HostDaemon.on_message` for every frame on
  ``{prefix}/{session}/in/+``: size and retained checks, the intake budget
  (:class:`~host.intake.Intake`, this thread's alone), decode, then
  :meth:`~host.writer.PadWriter.submit`; replies and HostState go out through
  the :class:`~host.outbox.Outbox`. Drops before the table are counted in a
  :class:`~host.drops.DropCounter` (its own lock). It also runs :meth:`on_connect`.
- the pad writer's thread applies queued states and runs the stale/idle timers;
  the seat table and queue are the writer's, behind its private lock.
- the uinput sink's force-feedback thread calls :meth:`on_rumble`.
- the main thread (:meth:`HostDaemon.run`) waits for a stop request, pings
  systemd's watchdog, logs the status line from snapshots, and on stop drives
  every pad neutral, publishes HostState offline (retained) and closes the pads
  (host rule 7).

An exception in a callback on a library's thread is counted in
:class:`~host.faults.Faults` and shows in the status line. Pads exist from
start-up, one per seat, and stay through guest changes and broker outages
(rule 8): only :meth:`run`'s end closes them.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from host.drops import DropCounter, DropReason, HostDrop
from host.outbox import Outbox
from host.parts import HostParts
from host.status import StatusReport
from relay.config import HostSection
from relay.errors import CoplayError
from relay.frames import MAX_PAYLOAD, Drop, FrameCodec, Rumble
from relay.linkstatus import LinkLike
from relay.logs import Throttle
from relay.topics import Topics


class HostDaemon:
    """One host: its seats, pads, link and status."""

    def __init__(
        self,
        settings: HostSection,
        topics: Topics,
        parts: HostParts,
        *,
        codec: FrameCodec | None = None,
        logger: Any = None,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._parts = parts
        self._codec = codec or FrameCodec()
        self._log = log = logger if logger is not None else structlog.get_logger("host")
        allowed = settings.allowed()
        self._allowed = frozenset(allowed) if allowed else None  # None: first come
        self._drops = DropCounter()  # dropped before the seat table
        self._throttle = Throttle(10.0)  # frame_dropped lines (network thread)
        writer, intake = parts.writer, parts.intake
        self._outbox = Outbox(topics, settings.seats, writer, intake, parts.clock, self._codec, log)
        self._report = StatusReport(parts, self._drops, log)
        self._ready = threading.Event()
        self._link: LinkLike | None = None

    # ------------------------------------------------------------------ library threads

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """One message on ``in/+`` (paho's network thread: never blocks on a device)."""
        parts = self._parts
        try:
            if len(payload) > MAX_PAYLOAD:
                self._drop(Drop.OVERSIZED, topic)
                return
            if retained:
                self._drop(HostDrop.RETAINED, topic)
                return
            user = self._topics.input_user(topic)
            if user is None:
                self._drop(HostDrop.BAD_TOPIC, topic)
                return
            now = parts.clock.monotonic()
            intake = parts.intake
            if not intake.admit(user, len(payload), now):
                return  # counted there: one user's flood is dropped before decoding
            allowed = self._allowed
            if allowed is not None and user not in allowed and not intake.reject_due(user, now):
                self._drops.add(HostDrop.NOT_ALLOWED)  # rule 2: not decoded, not answered
                return
            frame = self._codec.decode(payload)
            if isinstance(frame, Drop):
                self._drop(frame, topic)
                return
            rest = parts.writer.submit(user, frame, now)
            if rest:
                self._outbox.carry_out(rest)
        except Exception as exc:
            parts.faults.record("on_message", exc)

    def _drop(self, reason: DropReason, topic: str) -> None:
        self._drops.add(reason)
        if self._throttle.allow(reason):
            self._log.info("frame_dropped", reason=str(reason), user=self._topics.input_user(topic))

    def on_connect(self) -> None:
        """Connected and subscribed: HostState online; the first time, tell systemd."""
        try:
            self._outbox.publish_state()
            if not self._ready.is_set():
                self._ready.set()
                self._parts.notifier.notify("READY=1")
                self._log.info("host_ready", topic=self._topics.inputs)
        except Exception as exc:
            self._parts.faults.record("on_connect", exc)

    def on_rumble(self, seat: int, frame: Rumble) -> None:
        """A game's rumble on seat ``seat``'s pad: forward it to that seat's guest."""
        user = self._parts.writer.user_at(seat)
        if user is not None:
            self._outbox.send(user, frame, 0)

    # ------------------------------------------------------------------ main thread

    def run(self, stop: threading.Event) -> int:
        """Open the pads, connect, serve until ``stop`` is set; then shut down cleanly."""
        settings, parts = self._settings, self._parts
        try:
            for seat in settings.seats:
                parts.sink.open(seat, self.on_rumble)
        except BaseException:
            parts.sink.close()
            raise
        if not self._allowed:
            self._log.warning(
                "first_come_first_served",
                hint="allow is empty: any user who can reach the session may take a seat",
            )
        self._log.info(
            "host_started",
            seats=list(settings.seats),
            allow=list(settings.allow),
            stale_ms=settings.stale_ms,
            idle_s=settings.idle_s,
        )
        failure: CoplayError | None = None
        try:
            parts.writer.start(self._outbox.carry_out)
            link = parts.make_link(
                on_message=self.on_message,
                subscriptions=[(self._topics.inputs, 1)],
                will=self._outbox.offline_state(),
                on_connect=self.on_connect,
            )
            self._link = link
            self._outbox.attach(link)
            link.start()
            failure = self._serve(stop, link)
        finally:
            self._shutdown()
        if failure is not None:
            raise failure
        return 0

    def _serve(self, stop: threading.Event, link: LinkLike) -> CoplayError | None:
        clock, notifier, writer = self._parts.clock, self._parts.notifier, self._parts.writer
        interval = self._settings.status_interval_s
        watchdog_s = notifier.watchdog_s
        now = clock.monotonic()
        next_status = now + interval if interval > 0 else None
        last_status = now
        next_watchdog = now
        while True:
            now = clock.monotonic()
            stats = writer.stats()
            if watchdog_s is not None and now >= next_watchdog:
                writer_ok = stats.alive and now - stats.beat < max(2 * watchdog_s, 2.0)
                sink_ok = stats.sink.failing_since is None
                if writer_ok and sink_ok and not link.status.state.final:
                    notifier.notify("WATCHDOG=1")
                next_watchdog = now + watchdog_s
            if next_status is not None and now >= next_status:
                self._report.log(now - last_status, link.status)
                last_status = now
                next_status = now + interval
            self._report.notify(link.status)
            failure = link.failure
            if failure is not None:  # an AuthError ends in exit 77
                return failure
            if not stats.alive:
                return CoplayError(f"the pad writer stopped: {stats.failed}")
            failing = stats.sink.failing_since
            if failing is not None and now - failing >= self._settings.sink_fail_s:
                return CoplayError(
                    f"every pad write failed for {self._settings.sink_fail_s:g} s "
                    f"({stats.sink.error}); exiting so the service restarts"
                )
            waits = [1.0]
            if watchdog_s is not None:
                waits.append(next_watchdog - now)
            if next_status is not None:
                waits.append(next_status - now)
            if stop.wait(max(0.01, min(waits))):
                return None

    def drops(self) -> dict[str, int]:
        """Every drop counter so far, by reason."""
        return self._report.drops()

    def _shutdown(self) -> None:
        """Rule 7: every pad neutral, HostState offline (retained), pads closed."""
        self._parts.notifier.notify("STOPPING=1")
        self._parts.writer.stop()  # its last act: every pad neutral
        if self._link is not None:
            self._link.stop(final=[self._outbox.offline_state()])
        self._parts.sink.close()
        self._log.info("host_stopped", drops=self.drops())
