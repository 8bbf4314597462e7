"""The guest's main loop: read the pad, send frames, talk to the host, show the status.

Everything that touches SDL runs here, on the main thread. The loop sleeps
until the next thing is due (a keyframe, a waiting change, a Hello or Ping, a
status refresh) or until a descriptor says there is something to look at:

- the pad's waker (:attr:`guest.pad.PadSource.waker`): on Linux our own
  descriptor on the evdev node SDL reads the pad from, readable the instant the
  pad changes, or the virtual pad's pipe. The loop pumps SDL as soon as it is
  readable, so a change goes out at once, and an idle pad costs no wake-ups
  beyond the keyframes (each of which pumps SDL too, which also sees hot-plug);
- the ``wakeup`` pipe, poked by the link's thread when something arrived that
  this thread must act on (a Rumble, a reconnect, a final Reject).

A pad with no waker (not Linux, a node we may not open, ``pad_wake = false``)
is polled: SDL has no blocking wait for joystick input (``SDL_WaitEventTimeout``
without a window, and ``pygame.event.wait``, pump every millisecond), so the
loop pumps every ``1/max_rate_hz`` (2 ms by default) while the pad is in use,
and once it has been still for ``idle_after_s`` (0.5 s) about every
``idle_poll_s`` (8 ms, a USB full-speed pad's own report interval), stretched
so the keyframe interval holds a whole number of polls (8.3 ms at 60 Hz). A
signal handler only sets a flag the loop reads at its next wake-up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

import structlog

from guest.pad import PadSource
from guest.sender import Sender
from guest.session import Session
from guest.status import FrameRate, StatusReporter, StatusView
from guest.wake import PipeWaker, Waiter
from relay.frames import PadState
from relay.linkstatus import LinkLike


class Window(Protocol):
    """An optional view of the pad and the link (``--window``)."""

    def draw(self, view: StatusView, state: PadState, rtt_ms: Sequence[float]) -> None: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class GuestLoop:
    """Runs one guest until stopped, rejected for good, or refused by the broker."""

    source: PadSource
    sender: Sender
    session: Session
    link: LinkLike
    status: StatusReporter
    window: Window | None = None
    _: KW_ONLY
    quit_requested: Callable[[], bool] = lambda: False
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    active_poll_s: float = 0.002
    idle_poll_s: float = 0.008  # stretched so the keyframe interval holds whole polls
    idle_after_s: float = 0.5
    window_interval_s: float = 1 / 30
    wakeup: PipeWaker | None = None
    wakeups: int = field(default=0, init=False)  # times the loop woke up (status and tests)

    def __post_init__(self) -> None:
        key = self.sender.key_interval
        self._idle_poll = key / max(2, round(key / self.idle_poll_s))
        self._waiter = Waiter()
        self._stop = False
        self._fps = FrameRate()
        self._log = structlog.get_logger("guest")

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler: a flag and a byte down a pipe)."""
        self._stop = True
        if self.wakeup is not None:
            self.wakeup.poke()

    def run(self) -> None:
        """Run until stopped; Bye is the last frame. Raises the link's or session's failure."""
        self.link.start()
        try:
            self._loop()
        finally:
            self.status.update(self.clock(), self._view())
            self.link.stop(final=[self.session.bye()])
            self.status.finish()

    def _loop(self) -> None:
        last_change = -math.inf
        last_poll = self.clock()
        next_draw = math.inf if self.window is None else -math.inf
        seen: tuple[int, str | None, int] | None = None
        source, sender, session = self.source, self.sender, self.session
        wakeup, waiter = self.wakeup, self._waiter
        wakeup_fd = -1 if wakeup is None else wakeup.fileno()
        while not self._stop:
            now = self.clock()
            work_at = min(sender.next_due(), session.next_due(), self.status.next_due(), next_draw)
            waker = source.waker
            if waker is not None:
                due = work_at  # the pad's node says when it changed: no polling
            else:
                poll_every = (
                    self.active_poll_s if now - last_change < self.idle_after_s else self._idle_poll
                )
                due = min(work_at, last_poll + poll_every)
            if due > now:
                waiter.watch((-1 if waker is None else waker.fileno(), wakeup_fd))
                if waiter.watching:
                    ready = waiter.wait(due - now)
                    if wakeup is not None and wakeup_fd in ready:
                        wakeup.drain()
                else:
                    self.sleep(due - now)
                now = self.clock()
            self.wakeups += 1
            states = source.poll()
            last_poll = now
            if states:
                last_change = now
                sender.offer(states)
            elif now < work_at and not session.news and not self.quit_requested():
                continue  # a look at the pad and nothing more: keep this wake-up cheap
            failure = self.link.failure or session.fatal
            if failure is not None:
                raise failure
            if self.quit_requested():
                break
            if session.inbox.take_resync():
                sender.resync()
            for rumble in session.inbox.take_rumbles():
                source.rumble(rumble.low, rumble.high, rumble.ms)
            session.tick(now)
            sender.pump(now)
            changes = (session.version, source.controller_name, self._callback_errors())
            if now >= self.status.next_due() or changes != seen:
                seen = changes
                self.status.update(now, self._view(now))
            if now >= next_draw and self.window is not None:
                next_draw = now + self.window_interval_s
                view = self._view(now)
                self.window.draw(view, source.state, session.view().rtt_history_ms)

    def _view(self, now: float | None = None) -> StatusView:
        fps = self._fps.update(self.clock() if now is None else now, self.sender.frames)
        errors = self._callback_errors()
        return StatusView.of(self.session.view(), fps, self.source.controller_name, errors)

    def _callback_errors(self) -> int:
        """Exceptions in callbacks: the guest's own (session and pad) plus the link's."""
        return self.session.errors.count + self.link.status.callback_errors
