"""The guest's side of the conversation with the host: Hello, Ping, and what comes back.

- Hello (QoS 1) on every connect and then every second until a Welcome (or a
  Pong or HostState that shows our seat) arrives; Ping (QoS 0) every second
  (:mod:`guest.heartbeat` keeps the times). Each Pong gives a round-trip time
  (:class:`guest.rtt.RttStats`: median and jitter of the last 32).
- Reject (:mod:`guest.rejects`): a final one sets :attr:`Session.fatal` (a
  SessionRejected, exit 75); otherwise the guest says why it waits and keeps
  asking once a second, and its inputs keep flowing, so the first free seat is
  taken (an Input from an allowed user takes a free seat).
- Rumble is queued for the main thread, which owns the pad, in
  :attr:`Session.inbox` (:mod:`guest.inbox`); ``on_news`` (the main loop's
  wake-up pipe) is called whenever something arrived that the main thread must
  act on (a Rumble, a reconnect, a final Reject).
- HostState (retained) says whether the host is online; offline means the seat
  is gone until a new Welcome.

Network callbacks (:meth:`on_connect`, :meth:`on_message`, :meth:`on_status`)
run on the link's thread, inside :meth:`guest.callbacks.CallbackErrors.guard`
(an exception is counted for the status line, not lost in paho); :meth:`tick`,
:meth:`view` and the inbox's ``take_*`` methods on the main thread, which picks
up what arrived at its next wake-up. One lock guards what they share (the
inbox has its own); the main thread's hot checks read single values without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from guest.callbacks import CallbackErrors
from guest.heartbeat import Heartbeat
from guest.inbox import Inbox
from guest.rejects import judge
from guest.rtt import MAX_RTT_US, RttStats
from relay.errors import SessionRejected
from relay.frames import (
    Bye,
    Drop,
    FrameCodec,
    Hello,
    HostState,
    Ping,
    Pong,
    Reject,
    Rumble,
    Welcome,
)
from relay.linkstatus import LinkState, LinkStatus, Message
from relay.serial32 import elapsed_us, now_us32
from relay.topics import Topics

WAITING_FOR_HOST = "waiting for the host to come online"  # connected, no HostState online


@dataclass(frozen=True, slots=True)
class SessionView:
    """A snapshot for the status line and window."""

    state: str  # connecting | connected | reconnecting | rejected | refused | stopped
    seat: int | None
    host_online: bool | None  # None: not heard yet
    note: str  # why we wait, why we were rejected, why the link is down
    rtt_p50_ms: float | None
    jitter_ms: float | None
    rtt_history_ms: tuple[float, ...] = ()


Publish = Callable[[str, bytes, int], bool]  # (topic, payload, qos) -> sent


class Session:
    """One guest process's session with the host (one epoch)."""

    def __init__(
        self,
        topics: Topics,
        user: str,
        epoch: int,
        publish: Publish,
        *,
        name: str,
        controller: Callable[[], str | None],
        codec: FrameCodec | None = None,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], int] = now_us32,
        hello_interval: float = 1.0,
        ping_interval: float = 1.0,
        waiting: Callable[[], str] = lambda: "",
        on_news: Callable[[], None] = lambda: None,
        errors: CallbackErrors | None = None,
    ) -> None:
        self.user = user
        self._waiting = waiting  # why the link is not up yet, e.g. "token API unreachable (...)"
        self.epoch = epoch
        self.in_topic = topics.input(user)
        self.out_topic = topics.output(user)
        self.host_topic = topics.host
        self._publish = publish
        self._name = name[:64]
        self._controller = controller
        self._codec = codec or FrameCodec()
        self._clock = clock
        self._stamp = stamp
        self._heartbeat = Heartbeat(hello_interval, ping_interval)
        self._on_news = on_news
        self.inbox = Inbox(on_news)  # Rumbles and resyncs for the main thread
        self.errors = errors or CallbackErrors()  # exceptions in the link-thread callbacks
        self._log = structlog.get_logger("guest.session").bind(user=user, epoch=epoch)

        self._lock = threading.Lock()
        self._link = LinkStatus(LinkState.STARTING)
        self._seat: int | None = None
        self._welcomed = False
        self._host_online: bool | None = None
        self._note = ""
        self.fatal: SessionRejected | None = None
        self.rtt = RttStats()
        self.dropped = 0  # payloads that did not decode
        self.version = 0  # bumped on every change the status shows (read without the lock)

    # ------------------------------------------------------------------ wiring

    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        return [(self.out_topic, 1), (self.host_topic, 1)]

    def will(self) -> Message:
        """The Last Will: the broker says Bye for us if the connection dies."""
        return self.bye()

    def bye(self) -> Message:
        return Message(self.in_topic, self._codec.encode(Bye(self.epoch)), qos=1)

    # ------------------------------------------------------------------ link thread

    def on_connect(self) -> None:
        """Connected (subscriptions restored): say Hello now, and resend the pad state."""
        with self.errors.guard("on_connect"):
            with self._lock:
                self._welcomed = False
                self.version += 1
                self._heartbeat.hello_sent(self._clock())
            self.inbox.resync()
            self._hello()
            self._on_news()  # after the Hello: the resent pad state follows it, never precedes it

    def on_status(self, status: LinkStatus) -> None:
        with self.errors.guard("on_status"):
            with self._lock:
                self._link = status
                self.version += 1
            self._log.info("link_status", state=status.state.value, reason=status.reason)

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        with self.errors.guard("on_message"):
            self._on_message(topic, payload, retained)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        frame = self._codec.decode(payload)
        if isinstance(frame, Drop):
            self.dropped += 1
            return
        if topic == self.host_topic:
            if isinstance(frame, HostState):
                self._host_state(frame)
            return
        if topic != self.out_topic or retained:
            return
        match frame:
            case Welcome(epoch=epoch, seat=seat) if epoch == self.epoch:
                self._seated(seat, "welcome")
            case Pong(epoch=epoch, t=t, seat=seat) if epoch == self.epoch:
                rtt = elapsed_us(self._stamp(), t)
                if rtt is not None and rtt < MAX_RTT_US:
                    with self._lock:
                        self.rtt.add(rtt)
                if seat:
                    self._seated(seat, "pong")
            case Reject(epoch=epoch, code=code, reason=reason) if epoch == self.epoch:
                self._reject(code, reason)
            case Rumble():
                self.inbox.rumble(frame)
            case _:
                pass

    def _seated(self, seat: int, how: str) -> None:
        with self._lock:
            changed = seat != self._seat or not self._welcomed
            self._seat, self._welcomed, self._note = seat, True, ""
            self.version += 1
        if changed:
            self._log.info("seat_taken", seat=seat, via=how)

    def _reject(self, code: int, reason: str) -> None:
        verdict = judge(self.user, code, reason)
        with self._lock:
            self._seat, self._welcomed, self._note = None, False, verdict.note
            self.version += 1
            if verdict.fatal is not None:
                self.fatal = verdict.fatal
        if verdict.fatal is not None:
            self._on_news()
        final = verdict.fatal is not None
        self._log.warning("rejected", code=verdict.label, reason=reason, final=final)

    def _host_state(self, state: HostState) -> None:
        seat = next((s for s, user in state.seats if user == self.user), None)
        with self._lock:
            was = self._host_online
            self._host_online = state.online
            self.version += 1
            if not state.online:
                self._seat, self._welcomed = None, False
        if was != state.online:
            self._log.info("host_state", online=state.online)
        if state.online and seat is not None:
            self._seated(seat, "host_state")

    # ------------------------------------------------------------------ main thread

    def next_due(self) -> float:
        return self._heartbeat.next_due(self._welcomed)

    def tick(self, now: float) -> None:
        """Send the Hello and Ping that are due."""
        if now < self.next_due():
            return
        with self._lock:
            connected = self._link.state is LinkState.CONNECTED
            hello, ping = self._heartbeat.due(now, connected=connected, welcomed=self._welcomed)
        if hello:
            self._hello()
        if ping:
            self._publish(self.in_topic, self._codec.encode(Ping(self.epoch, self._stamp())), 0)

    def _hello(self) -> None:
        controller = (self._controller() or "")[:64]
        hello = Hello(self.epoch, 1, self._name, controller)
        self._publish(self.in_topic, self._codec.encode(hello), 1)

    @property
    def news(self) -> bool:
        """Something arrived that the main thread must act on (read without the lock)."""
        return self.inbox.pending or self.fatal is not None

    def view(self) -> SessionView:
        with self._lock:
            link = self._link
            if self.fatal is not None:
                state = "rejected"
            elif link.state is LinkState.STARTING:
                state = "connecting"
            else:
                state = link.state.value
            note = self._note
            if not note and link.state is not LinkState.CONNECTED:
                note = self._waiting() or link.reason
            elif not note and self._seat is None and self._host_online is not True:
                note = WAITING_FOR_HOST  # connected, and no sign of the host yet
            return SessionView(
                state=state,
                seat=self._seat,
                host_online=self._host_online,
                note=note,
                rtt_p50_ms=self.rtt.p50_ms,
                jitter_ms=self.rtt.jitter_ms,
                rtt_history_ms=tuple(self.rtt.history_ms()),
            )
