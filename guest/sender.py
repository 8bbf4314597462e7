"""When Input frames go out: at once on a change, keyframes at ``rate_hz`` while nothing changes.

:class:`Sender` is pure timing logic around an injected ``publish(payload) ->
bool``; the main loop feeds it the states a pad source reports
(:meth:`Sender.offer`), wakes at :meth:`Sender.next_due` and calls
:meth:`Sender.pump`.

- A change goes out at once, unless a change went out less than
  ``1/max_rate_hz`` ago; then it waits for that gap, it is never dropped. A
  keyframe never delays a change: keyframes go out only after ``1/rate_hz``
  without one, so frames stay within ``max_rate_hz`` while the pad moves (and
  within ``max_rate_hz + rate_hz`` a second in any case), and the first press
  after a rest is not held back because a keyframe happened to leave just before.
  Waiting changes that differ only in the sticks are coalesced (the newest
  wins); a button edge is never coalesced away, so a press and its release each
  get a frame however short the tap.
- With nothing waiting, the current state goes out as a keyframe every
  ``1/rate_hz``, on a fixed schedule (a late wake-up does not shift later ones).
- ``publish`` returning False (offline) drops that frame: inputs are never
  queued for later. :meth:`Sender.resync` (after a reconnect) forgets what was
  waiting and sends the current state at the next pump.
- Each frame carries the process's ``epoch``, a ``seq`` one higher than the
  previous frame's (mod 2**32; the first is 1) and ``t`` from the monotonic
  clock in microseconds mod 2**32.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable

from relay.frames import NEUTRAL, FrameCodec, Input, PadState
from relay.serial32 import WRAP, now_us32

SendFrame = Callable[[bytes], bool]


class Sender:
    """Input frames for one guest process."""

    def __init__(
        self,
        publish: SendFrame,
        *,
        epoch: int,
        rate_hz: float,
        max_rate_hz: float,
        codec: FrameCodec | None = None,
        stamp: Callable[[], int] = now_us32,
    ) -> None:
        if rate_hz <= 0 or max_rate_hz < rate_hz:
            raise ValueError("need 0 < rate_hz <= max_rate_hz")
        self._publish = publish
        self.epoch = epoch
        self.key_interval = 1.0 / rate_hz
        self.min_interval = 1.0 / max_rate_hz
        self._codec = codec or FrameCodec()
        self._stamp = stamp
        self._pending: deque[PadState] = deque()
        self._current = NEUTRAL
        self._last_sent = NEUTRAL  # last state handed to publish
        self._last_at = -math.inf  # when the last change (not keyframe) was handed out
        self._next_key = -math.inf  # the first pump sends at once
        self.seq = 0  # of the last frame published
        self.frames = 0  # published (publish returned True)
        self.dropped = 0  # publish returned False (offline)

    @property
    def current(self) -> PadState:
        """The newest state offered."""
        return self._current

    @property
    def waiting(self) -> int:
        """Changes not yet sent."""
        return len(self._pending)

    def offer(self, states: Iterable[PadState]) -> None:
        """States from the pad, oldest first; each differing one is a change to send."""
        for state in states:
            tail = self._pending[-1] if self._pending else self._last_sent
            if state == tail:
                continue
            if self._pending and self._pending[-1].buttons == state.buttons:
                self._pending[-1] = state  # only the sticks moved on: the newest wins
            else:
                self._pending.append(state)
            self._current = state

    def resync(self) -> None:
        """Forget waiting changes; the current state goes out at the next pump."""
        self._pending.clear()
        self._last_sent = self._current
        self._next_key = -math.inf
        self._last_at = -math.inf

    def next_due(self) -> float:
        """The monotonic time at which :meth:`pump` has something to send."""
        if self._pending:
            return self._last_at + self.min_interval
        return self._next_key

    def pump(self, now: float) -> bool:
        """Send what is due at ``now`` (at most one frame); True if a frame was handed out."""
        if self._pending:
            if now < self._last_at + self.min_interval:
                return False
            self._send(self._pending.popleft(), now)
            self._last_at = now
            self._next_key = now + self.key_interval
            return True
        if now < self._next_key:
            return False
        late = now - self._next_key
        self._send(self._current, now)
        # on schedule, unless so late that catching up would send a burst
        base = self._next_key if late < self.key_interval else now
        self._next_key = base + self.key_interval
        return True

    def _send(self, state: PadState, now: float) -> None:
        self._last_sent = state
        seq = (self.seq + 1) % WRAP
        payload = self._codec.encode(Input.of(self.epoch, seq, self._stamp(), state))
        if self._publish(payload):
            self.seq = seq
            self.frames += 1
        else:
            self.dropped += 1
