"""The guest's side of the conversation with the host: Hello, Ping, and what comes back.

- Hello (QoS 1) on every connect and then every second until a Welcome (or a
  Pong or HostState that shows our seat) arrives.
- Ping (QoS 0) every second; each Pong gives a round-trip time. :class:`RttStats`
  keeps the last 32: the median and the jitter (mean change between
  consecutive samples, as RTP reports it).
- Reject: ``NOT_ALLOWED``, ``PROTOCOL`` and ``REPLACED`` (another guest
  signed in as this user took the seat) are final (retrying cannot help:
  :attr:`Session.fatal` holds a SessionRejected, exit 75). ``FULL`` and
  ``SEAT_TAKEN`` are not: the guest says why it waits and keeps asking once a
  second, and its inputs keep flowing, so the first free seat is taken (an Input
  from an allowed user takes a free seat).
- Rumble is queued for the main thread, which owns the pad; ``on_news`` (the
  main loop's wake-up pipe) is called whenever something arrived that the main
  thread must act on (a Rumble, a reconnect, a final Reject).
- HostState (retained) says whether the host is online; offline means the seat
  is gone until a new Welcome.

Network callbacks (:meth:`on_connect`, :meth:`on_message`, :meth:`on_status`)
run on the link's thread; :meth:`tick` and the ``take_*`` methods on the main
thread, which picks up what arrived at its next wake-up. One lock guards what
they share; the main thread's hot checks read single values without it.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

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
    RejectCode,
    Rumble,
    Welcome,
)
from relay.linkstatus import LinkState, LinkStatus, Message
from relay.serial32 import elapsed_us, now_us32
from relay.topics import Topics

FINAL_REJECTS = frozenset({RejectCode.NOT_ALLOWED, RejectCode.PROTOCOL, RejectCode.REPLACED})
MAX_RTT_US = 30_000_000  # anything longer is not an answer to a ping we still remember
WAITING_FOR_HOST = "waiting for the host to come online"  # connected, no HostState online


class RttStats:
    """Round-trip samples (microseconds): median and jitter over the last ``size``."""

    def __init__(self, size: int = 32) -> None:
        self._samples: deque[int] = deque(maxlen=size)

    def add(self, rtt_us: int) -> None:
        self._samples.append(rtt_us)

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def p50_ms(self) -> float | None:
        return statistics.median(self._samples) / 1000 if self._samples else None

    @property
    def jitter_ms(self) -> float | None:
        samples = list(self._samples)
        if len(samples) < 2:
            return None
        steps = [abs(b - a) for a, b in itertools.pairwise(samples)]
        return sum(steps) / len(steps) / 1000

    def history_ms(self) -> list[float]:
        return [s / 1000 for s in self._samples]


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
        self._hello_interval = hello_interval
        self._ping_interval = ping_interval
        self._on_news = on_news
        self._log = structlog.get_logger("guest.session").bind(user=user, epoch=epoch)

        self._lock = threading.Lock()
        self._link = LinkStatus(LinkState.STARTING)
        self._seat: int | None = None
        self._welcomed = False
        self._host_online: bool | None = None
        self._note = ""
        self.fatal: SessionRejected | None = None
        self._rumbles: deque[Rumble] = deque(maxlen=8)
        self._resync = False
        self._next_hello = 0.0
        self._next_ping = 0.0
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
        with self._lock:
            self._welcomed = False
            self._resync = True
            self.version += 1
            self._next_hello = self._clock() + self._hello_interval
        self._hello()
        self._on_news()  # after the Hello: the resent pad state follows it, never precedes it

    def on_status(self, status: LinkStatus) -> None:
        with self._lock:
            self._link = status
            self.version += 1
        self._log.info("link_status", state=status.state.value, reason=status.reason)

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
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
                with self._lock:
                    self._rumbles.append(frame)
                self._on_news()
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
        try:
            known = RejectCode(code)
        except ValueError:
            known = None
        label = known.name.lower() if known else f"code {code}"
        text = f"{label}: {reason}" if reason else label
        with self._lock:
            self._seat, self._welcomed = None, False
            self.version += 1
            if known in FINAL_REJECTS:
                self._note = text
                self.fatal = SessionRejected(
                    f"the host rejected {self.user!r} ({text}); ask the streamer to allow you"
                    if known is RejectCode.NOT_ALLOWED
                    else f"the host rejected {self.user!r} ({text})"
                )
            else:
                self._note = f"waiting for a seat ({text})"
        if known in FINAL_REJECTS:
            self._on_news()
        self._log.warning("rejected", code=label, reason=reason, final=known in FINAL_REJECTS)

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
        if self._welcomed:
            return self._next_ping
        return min(self._next_hello, self._next_ping)

    def tick(self, now: float) -> None:
        """Send the Hello and Ping that are due."""
        if now < self.next_due():
            return
        with self._lock:
            connected = self._link.state is LinkState.CONNECTED
            hello = connected and not self._welcomed and now >= self._next_hello
            ping = connected and now >= self._next_ping
            if hello:
                self._next_hello = now + self._hello_interval
            if ping:
                self._next_ping = now + self._ping_interval
            if not connected:
                self._next_hello = self._next_ping = now + min(
                    self._hello_interval, self._ping_interval
                )
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
        return bool(self._rumbles) or self._resync or self.fatal is not None

    def take_rumbles(self) -> list[Rumble]:
        if not self._rumbles:  # the common case, without the lock
            return []
        with self._lock:
            rumbles = list(self._rumbles)
            self._rumbles.clear()
        return rumbles

    def take_resync(self) -> bool:
        """True once after each connect: the current pad state must go out now."""
        if not self._resync:
            return False
        with self._lock:
            resync, self._resync = self._resync, False
        return resync

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
            if (
                not note
                and link.state is LinkState.CONNECTED
                and self._seat is None
                and self._host_online is not True
            ):
                note = WAITING_FOR_HOST
            return SessionView(
                state=state,
                seat=self._seat,
                host_online=self._host_online,
                note=note,
                rtt_p50_ms=self.rtt.p50_ms,
                jitter_ms=self.rtt.jitter_ms,
                rtt_history_ms=tuple(self.rtt.history_ms()),
            )
