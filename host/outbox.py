"""What the host sends: replies to guests, Rejects within their limits, and HostState.

:class:`Outbox` carries out the effects of the seat table that are not pad
states (:class:`~host.effects.Reply`, :class:`~host.effects.SeatChange`), on
whichever thread produced them: paho's network thread (a frame's effects),
the pad writer's (a seat freed when idle), the uinput sink's (a game's rumble).
Until the daemon attaches its link, nothing goes out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from host.effects import Effect, Reply, SeatChange
from host.intake import Intake
from host.writer import PadWriter
from relay.clock import Clock
from relay.frames import Frame, FrameCodec, HostState, Reject, RejectCode
from relay.linkstatus import LinkLike, Message
from relay.topics import Topics


class Outbox:
    """Replies on ``out/{user}``, HostState on the host topic (retained), and their logs."""

    def __init__(
        self,
        topics: Topics,
        seats: Sequence[int],
        writer: PadWriter,
        intake: Intake,
        clock: Clock,
        codec: FrameCodec,
        logger: Any,
    ) -> None:
        self._topics = topics
        self._seats = list(seats)
        self._writer = writer
        self._intake = intake
        self._clock = clock
        self._codec = codec
        self._log = logger
        self._state_lock = threading.Lock()  # HostState publishes go out in order
        self._link: LinkLike | None = None

    def attach(self, link: LinkLike) -> None:
        """From now on, send through ``link`` (set once, before it starts)."""
        self._link = link

    def carry_out(self, effects: Sequence[Effect]) -> None:
        """Replies, seat changes and HostState (network or writer thread)."""
        seats_changed = False
        for effect in effects:
            match effect:
                case Reply(user=user, frame=Reject() as frame, qos=qos):
                    self._reject(user, frame, qos)
                case Reply(user=user, frame=frame, qos=qos):
                    self.send(user, frame, qos)
                case SeatChange():
                    seats_changed = True
                    self._log.info(
                        effect.event,
                        seat=effect.seat,
                        user=effect.user,
                        epoch=effect.epoch,
                        why=effect.why,
                    )
        if seats_changed:
            self.publish_state()

    def send(self, user: str, frame: Frame, qos: int) -> None:
        link = self._link
        if link is not None:
            link.publish(self._topics.output(user), self._codec.encode(frame), qos)

    def _reject(self, user: str, frame: Reject, qos: int) -> None:
        """A Reject and its log line, within the per-user and global limits (rule 2)."""
        payload = self._codec.encode(frame)
        if not self._intake.may_reject(user, len(payload), self._clock.monotonic()):
            self._writer.forget_reject(user, frame.epoch, RejectCode(frame.code))
            return
        link = self._link
        if link is not None:
            link.publish(self._topics.output(user), payload, qos)
        self._log.info("guest_rejected", user=user, code=frame.code, why=frame.reason)

    def publish_state(self) -> None:
        """HostState online with who sits where (retained)."""
        link = self._link
        if link is None:
            return
        with self._state_lock:
            seats = self._writer.occupancy()
            link.publish(self._topics.host, self._codec.encode(HostState(True, seats)), 1, True)

    def offline_state(self) -> Message:
        """HostState offline, every seat free (retained): the Last Will and the last word."""
        free = [(seat, "") for seat in self._seats]
        return Message(self._topics.host, self._codec.encode(HostState(False, free)), 1, True)
