"""HostDaemon with fakes (link, sink, clock; no broker): host rules 5, 6 and 7, and callback
exceptions counted in the status line.

The daemon runs in a thread as it does in production (its main loop and the pad writer's
thread are real); the fake link hands frames to ``on_message`` on the test's thread, as
paho's network thread would. The sink takes the direct path (``nonblocking``), so a frame's
pad state is written before ``deliver`` returns; the timers run on the writer thread off the
fake clock, which the test moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from host.daemon import HostDaemon
from host.faults import Faults
from host.intake import Intake
from host.notify import NullNotifier
from host.parts import HostParts
from host.seats import SeatTable
from host.sinks.base import FrameMeta, RumbleCallback
from host.writer import PadWriter
from relay.config import HostSection
from relay.errors import CoplayError
from relay.frames import Bye, Frame, FrameCodec, HostState, Input, PadState, Welcome
from relay.linkstatus import LinkLike, LinkState, LinkStatus, Message, MessageHandler
from relay.topics import Topics

CODEC = FrameCodec()
TOPICS = Topics("coplay", "s1")
A = PadState(buttons=1)
WAIT_S = 10.0


class Waitable:
    """A list of records and a condition to await one."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[list[Any]], bool]) -> list[Any]:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.items), WAIT_S), self.items
            return list(self.items)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def monotonic_ns(self) -> int:
        return int(self.now * 1e9)


class FakeSink:
    """Records every call; ``fail_with`` makes ``apply`` raise it."""

    nonblocking = True

    def __init__(self) -> None:
        self.calls = Waitable()
        self.fail_with: Exception | None = None

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        self.calls.add(("open", seat))

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.add(("apply", seat, meta.user, meta.seq))

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        self.calls.add(("neutral", seat, reason, meta.user))

    def close(self) -> None:
        self.calls.add(("close",))


@dataclass
class FakeLink:
    """What the daemon asked the factory for; publishes recorded, ``deliver`` plays paho."""

    on_message: MessageHandler
    will: Message
    on_connect: Callable[[], None]
    published: Waitable = field(default_factory=Waitable)
    final: list[Message] = field(default_factory=list)
    failure: CoplayError | None = None
    callback_errors: int = 0  # what the real link counts in its own callbacks

    @property
    def status(self) -> LinkStatus:
        return LinkStatus(LinkState.CONNECTED, callback_errors=self.callback_errors)

    def start(self) -> None:
        self.on_connect()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        self.published.add((topic, CODEC.decode(payload), retain))
        return True

    def stop(self, final: Sequence[Message] = (), timeout: float = 2.0) -> None:
        self.final.extend(final)

    def deliver(self, user: str, frame: Frame) -> None:
        self.on_message(TOPICS.input(user), CODEC.encode(frame), False)

    def host_states(self) -> list[HostState]:
        return [f for t, f, _ in self.published.items if t == TOPICS.host]


class Recorder:
    """A logger that keeps every event."""

    def __init__(self) -> None:
        self.events = Waitable()

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **kw: self.events.add((event, kw))


@dataclass
class Host:
    daemon: HostDaemon
    sink: FakeSink
    clock: FakeClock
    log: Recorder
    links: list[FakeLink]

    @property
    def link(self) -> FakeLink:
        return self.links[0]


@contextmanager
def running(stale_ms: int = 250, idle_s: int = 5, status_s: float = 0.0) -> Iterator[Host]:
    """A daemon with seats 2 and 3, running in a thread until the block ends."""
    settings = HostSection(
        seats=[2, 3], stale_ms=stale_ms, idle_s=idle_s, sink="null", status_interval_s=status_s
    )
    clock = FakeClock()
    sink = FakeSink()
    log = Recorder()
    faults = Faults(logger=log)
    table = SeatTable(settings.seats, settings.allowed(), stale_s=stale_ms / 1000, idle_s=idle_s)
    writer = PadWriter(table, sink, clock, faults, heartbeat_s=0.005)
    links: list[FakeLink] = []
    started = threading.Event()

    def make_link(**kwargs: Any) -> LinkLike:
        assert kwargs.pop("subscriptions") == [(TOPICS.inputs, 1)]
        link = FakeLink(**kwargs)
        links.append(link)
        started.set()
        return link

    parts = HostParts(writer, sink, make_link, clock, NullNotifier(), Intake(), faults)
    daemon = HostDaemon(settings, TOPICS, parts, logger=log)
    stop = threading.Event()
    exit_codes: list[int] = []
    thread = threading.Thread(target=lambda: exit_codes.append(daemon.run(stop)))
    thread.start()
    try:
        assert started.wait(WAIT_S)
        yield Host(daemon, sink, clock, log, links)
    finally:
        stop.set()
        thread.join(WAIT_S)
    assert exit_codes == [0]


def seated(states: list[HostState], user: str) -> bool:
    return bool(states) and states[-1].online and (2, user) in states[-1].seats


def test_silence_turns_the_pad_neutral_then_frees_the_seat_after_idle() -> None:
    """Rule 5: stale_ms of silence -> neutral (seat kept); frames resume; idle_s -> freed."""
    with running(stale_ms=250, idle_s=5) as host:
        host.link.deliver("alice", Input.of(7, 1, 0, A))
        assert ("apply", 2, "alice", 1) in host.sink.calls.items  # the direct path: at once
        assert seated(host.link.host_states(), "alice")
        host.clock.now += 0.3
        host.sink.calls.wait(lambda c: ("neutral", 2, "stale", "alice") in c)
        assert seated(host.link.host_states(), "alice")  # silent, not gone
        host.link.deliver("alice", Input.of(7, 2, 300_000, A))  # frames resume
        assert host.sink.calls.items[-1] == ("apply", 2, "alice", 2)
        host.clock.now += 5.0
        host.link.published.wait(lambda _: host.link.host_states()[-1].seats[0] == (2, ""))
        freed = host.log.events.wait(lambda e: any(name == "seat_freed" for name, _ in e))
        assert [kw["why"] for name, kw in freed if name == "seat_freed"] == ["idle"]


def test_bye_turns_the_pad_neutral_at_once_and_frees_the_seat() -> None:
    """Rule 6: a Bye of the current epoch -> neutral and the seat free, before deliver returns."""
    with running() as host:
        host.link.deliver("alice", Input.of(7, 1, 0, A))
        host.link.deliver("alice", Bye(7))
        assert host.sink.calls.items[-1] == ("neutral", 2, "bye", "alice")
        assert host.link.host_states()[-1] == HostState(True, [(2, ""), (3, "")])
        host.link.deliver("bob", Input.of(9, 1, 0, A))  # the seat is free for the next guest
        assert (TOPICS.output("bob"), Welcome(9, 2), False) in host.link.published.items


def test_shutdown_sets_every_pad_neutral_publishes_offline_and_closes_the_pads() -> None:
    """Rule 7: on stop every pad neutral (reason shutdown), HostState offline retained, closed."""
    with running() as host:
        host.link.deliver("alice", Input.of(7, 1, 0, A))
    calls = host.sink.calls.items
    assert calls[:2] == [("open", 2), ("open", 3)]
    assert calls[-3:] == [
        ("neutral", 2, "shutdown", "alice"),
        ("neutral", 3, "shutdown", None),
        ("close",),
    ]
    (offline,) = host.link.final
    assert offline.retain and offline.topic == TOPICS.host
    assert CODEC.decode(offline.payload) == HostState(False, [(2, ""), (3, "")])
    assert host.link.will == offline  # the Last Will says the same


def test_an_exception_in_a_callback_is_counted_and_shows_in_the_status_line() -> None:
    """A sink raising on paho's thread: on_message goes on, and status says callback errors 2."""
    with running(status_s=0.05) as host:
        host.sink.fail_with = RuntimeError("boom")
        host.link.deliver("alice", Input.of(7, 1, 0, A))
        host.link.deliver("alice", Input.of(7, 2, 0, A))
        host.sink.fail_with = None
        host.link.deliver("alice", Input.of(7, 3, 0, A))  # the next frame still goes through
        assert host.sink.calls.items[-1] == ("apply", 2, "alice", 3)
        host.clock.now += 1.0
        events = host.log.events.wait(lambda e: any(name == "host_status" for name, _ in e))
    status = next(kw for name, kw in events if name == "host_status")
    assert status["callback_errors"] == {"on_message": 2}
    assert status["status"].endswith("| callback errors 2")
    logged = [kw for name, kw in events if name == "callback_failed"]
    assert [(kw["where"], kw["count"]) for kw in logged] == [("on_message", 1)]  # throttled


def test_the_links_callback_errors_join_the_hosts_in_the_status_line() -> None:
    """Exceptions the link counted in its own paho callbacks show in host_status as ``link``."""
    with running(status_s=0.05) as host:
        host.link.callback_errors = 3
        host.clock.now += 1.0
        events = host.log.events.wait(lambda e: any(name == "host_status" for name, _ in e))
    status = next(kw for name, kw in events if name == "host_status")
    assert status["callback_errors"] == {"link": 3}
    assert status["status"].endswith("| callback errors 3")
