"""GuestLoop with fakes: a scripted pad, a recording link and a clock that only moves when slept.

The loop's own behaviour: a change goes out at the next look at the pad,
keyframes keep the rate while nothing changes, Hello/Ping on their cadence,
Rumble reaches the pad, a reconnect resends the pad state, a pad that goes
away sends neutral, the status line follows, and Bye is the last frame however
the loop ends. No thread, no socket, no real time: the fake clock jumps to
each wake-up the loop asks for, so every timing below is exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from guest.loop import GuestLoop
from guest.sender import Sender
from guest.session import Session
from guest.status import StatusReporter, StatusView
from guest.wake import Waker
from relay.errors import AuthError, CoplayError, SessionRejected
from relay.frames import (
    NEUTRAL,
    Button,
    Bye,
    Frame,
    FrameCodec,
    Hello,
    Input,
    PadState,
    Ping,
    Reject,
    RejectCode,
    Rumble,
    button_mask,
)
from relay.linkstatus import LinkState, LinkStatus, Message
from relay.topics import Topics

CODEC = FrameCodec()
TOPICS = Topics("pfx", "s1")
EPOCH = 77
A = PadState(buttons=button_mask(Button.A))
B = PadState(buttons=button_mask(Button.B))


class FakeClock:
    """Monotonic seconds that move only when the loop sleeps (then exactly as long as asked)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.actions: list[tuple[float, object]] = []  # (when, callable) run as time passes

    def __call__(self) -> float:
        return self.now

    def at(self, when: float, action: object) -> None:
        self.actions.append((when, action))
        self.actions.sort(key=lambda item: item[0])

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        while self.actions and self.actions[0][0] <= self.now:
            _, action = self.actions.pop(0)
            action()  # type: ignore[operator]


@dataclass
class Sent:
    at: float
    topic: str
    frame: Frame
    qos: int


class FakeLink:
    """Connects when started (as the real link does on its thread) and records every publish."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[Sent] = []
        self.session: Session | None = None
        self.connected = True
        self.failure: CoplayError | None = None
        self.final: list[Message] | None = None
        self.callback_errors = 0  # what the real link counts in its own callbacks

    @property
    def status(self) -> LinkStatus:
        state = LinkState.CONNECTED if self.connected else LinkState.RECONNECTING
        return LinkStatus(state, callback_errors=self.callback_errors)

    def start(self) -> None:
        self.connect()

    def connect(self) -> None:
        assert self.session is not None
        self.connected = True
        self.session.on_status(LinkStatus(LinkState.CONNECTED))
        self.session.on_connect()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        if not self.connected:
            return False
        frame = CODEC.decode(payload)
        assert not isinstance(frame, str), frame
        self.sent.append(Sent(self.clock.now, topic, frame, qos))
        return True

    def stop(self, final: Sequence[Message] = (), timeout: float = 2.0) -> None:
        self.final = list(final)

    def frames(self, kind: type) -> list[Sent]:
        return [s for s in self.sent if isinstance(s.frame, kind)]


@dataclass
class FakePad:
    """A pad source playing a script of (time, state); ``None`` as a state unplugs it."""

    clock: FakeClock
    script: list[tuple[float, PadState | None]] = field(default_factory=list)
    name: str | None = "Fake Pad"
    current: PadState = NEUTRAL
    polls: list[float] = field(default_factory=list)
    rumbles: list[tuple[int, int, int]] = field(default_factory=list)
    closed: bool = False

    @property
    def state(self) -> PadState:
        return self.current

    @property
    def controller_name(self) -> str | None:
        return self.name

    @property
    def waker(self) -> Waker | None:
        return None  # only polling can tell: the loop's own cadence is under test

    def poll(self) -> list[PadState]:
        self.polls.append(self.clock.now)
        out = []
        while self.script and self.script[0][0] <= self.clock.now:
            _, state = self.script.pop(0)
            if state is None:
                self.name, state = None, NEUTRAL
            if state != self.current:
                self.current = state
                out.append(state)
        return out

    def rumble(self, low: int, high: int, ms: int) -> bool:
        self.rumbles.append((low, high, ms))
        return True

    def close(self) -> None:
        self.closed = True


class Rig:
    """A GuestLoop on fakes; :meth:`run` runs it until the clock passes ``until``."""

    def __init__(
        self,
        script: list[tuple[float, PadState | None]] | None = None,
        quit_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        self.clock = FakeClock()
        self.pad = FakePad(self.clock, list(script or []))
        self.link = FakeLink(self.clock)
        self.logged: list[dict[str, object]] = []
        self.session = Session(
            TOPICS,
            "alice",
            EPOCH,
            self.link.publish,
            name="Alice",
            controller=lambda: self.pad.controller_name,
            clock=self.clock,
        )
        self.link.session = self.session
        self.sender = Sender(
            lambda payload: self.link.publish(self.session.in_topic, payload, 0),
            epoch=EPOCH,
            rate_hz=60,
            max_rate_hz=500,
        )
        self.status = StatusReporter(line=None, log=lambda event, **f: self.logged.append(f))
        self.loop = GuestLoop(
            source=self.pad,
            sender=self.sender,
            session=self.session,
            link=self.link,
            status=self.status,
            clock=self.clock,
            sleep=self.clock.sleep,
            quit_requested=quit_requested,
        )

    def run(self, until: float) -> None:
        self.clock.at(until, self.loop.stop)
        self.loop.run()

    def inputs(self) -> list[tuple[float, PadState]]:
        return [(s.at, s.frame.state) for s in self.link.frames(Input)]  # type: ignore[union-attr]

    def deliver(self, frame: Frame) -> None:
        self.session.on_message(self.session.out_topic, CODEC.encode(frame), False)


def test_a_change_goes_out_at_the_next_look_at_the_pad() -> None:
    """A press at 0.300 s is sent within one active poll (2 ms), not at the next keyframe."""
    rig = Rig([(0.300, A)])
    rig.run(until=0.5)
    first_a = next(at for at, state in rig.inputs() if state == A)
    assert 0.300 <= first_a <= 0.300 + 0.002 + 1e-9


def test_a_tap_between_two_looks_still_sends_press_and_release() -> None:
    rig = Rig([(0.2, A), (0.2, NEUTRAL)])  # pressed and released within one look
    rig.run(until=0.4)
    states = [state for _, state in rig.inputs()]
    assert A in states
    assert states[states.index(A) + 1] == NEUTRAL


def test_keyframes_hold_60_hz_while_nothing_changes() -> None:
    rig = Rig()
    rig.run(until=2.0)
    times = [at for at, _ in rig.inputs()]
    assert len(times) == pytest.approx(120, abs=2)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 1 / 60 + 1e-9  # none late
    assert min(gaps) >= 1 / 60 - 1e-9  # none early: the rate is a rate, not a floor


def test_hello_until_welcomed_and_a_ping_every_second() -> None:
    rig = Rig()
    rig.run(until=3.5)
    hellos = [s.at for s in rig.link.frames(Hello)]
    pings = [s.at for s in rig.link.frames(Ping)]
    assert hellos == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.01)  # nobody answered
    assert pings == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.01)
    assert all(s.qos == 1 for s in rig.link.frames(Hello))
    assert all(s.qos == 0 for s in rig.link.frames(Ping))


def test_bye_is_the_last_frame_on_a_clean_stop() -> None:
    rig = Rig([(0.1, A)])
    rig.run(until=0.3)
    assert rig.link.final is not None
    [bye] = rig.link.final
    assert bye.topic == TOPICS.input("alice")
    assert CODEC.decode(bye.payload) == Bye(EPOCH)
    assert bye.qos == 1


@pytest.mark.parametrize("how", ["link", "session"])
def test_a_final_failure_ends_the_loop_with_bye_and_is_raised(how: str) -> None:
    rig = Rig()

    def fail() -> None:
        if how == "link":
            rig.link.failure = AuthError("credentials refused")
        else:
            rig.deliver(Reject(EPOCH, RejectCode.NOT_ALLOWED, "not on the list"))

    rig.clock.at(0.25, fail)
    expected = AuthError if how == "link" else SessionRejected
    with pytest.raises(expected):
        rig.run(until=5.0)
    assert rig.clock.now < 0.3  # at the first wake-up after it, not at the end
    assert rig.link.final is not None and CODEC.decode(rig.link.final[0].payload) == Bye(EPOCH)


def test_a_quit_request_ends_the_loop_like_a_stop() -> None:
    quit_at = 0.4
    rig = Rig(quit_requested=lambda: rig.clock.now >= quit_at)
    rig.run(until=10.0)
    assert quit_at <= rig.clock.now < quit_at + 0.02
    assert rig.link.final is not None


def test_the_pad_going_away_sends_neutral_at_once_and_the_status_says_so() -> None:
    rig = Rig([(0.1, A), (0.5, None)])
    rig.run(until=0.8)
    after = [(at, state) for at, state in rig.inputs() if at >= 0.5]
    assert after[0][1] == NEUTRAL
    assert after[0][0] <= 0.5 + 0.01  # the idle poll (8.3 ms), not a keyframe later
    assert all(state == NEUTRAL for _, state in after)
    assert rig.status.last is not None and rig.status.last.controller is None


def test_rumble_from_the_host_is_played_on_the_pad() -> None:
    rig = Rig()
    rig.clock.at(0.2, lambda: rig.deliver(Rumble(1000, 40000, 100)))
    rig.run(until=0.3)
    assert rig.pad.rumbles == [(1000, 40000, 100)]


def test_a_reconnect_resends_the_pad_state_at_once() -> None:
    """After a reconnect the held button goes out right after the Hello, before any keyframe."""
    rig = Rig([(0.1, A)])

    def drop() -> None:
        rig.link.connected = False
        rig.session.on_status(LinkStatus(LinkState.RECONNECTING))

    rig.clock.at(0.3, drop)
    rig.clock.at(0.5004, rig.link.connect)
    rig.run(until=0.6)
    hello = next(s for s in rig.link.frames(Hello) if s.at >= 0.5)
    resent = next(s for s in rig.link.frames(Input) if s.at >= 0.5)
    assert resent.frame.state == A  # type: ignore[union-attr]
    assert resent.at - hello.at <= 0.0021  # the next look at the pad, not the next keyframe
    assert rig.link.sent.index(hello) < rig.link.sent.index(resent)


def test_polling_is_fast_while_the_pad_moves_and_slow_once_it_rests() -> None:
    rig = Rig([(0.1, A), (0.2, B)])
    rig.run(until=2.0)
    polls = rig.pad.polls
    active = [b - a for a, b in itertools.pairwise(polls) if 0.2 < a < 0.6]
    resting = [b - a for a, b in itertools.pairwise(polls) if 1.0 < a < 1.9]
    assert max(active) <= 0.002 + 1e-9
    assert min(resting) >= 1 / 60 / 2 - 1e-9  # about 8.3 ms: two looks per keyframe interval
    assert max(resting) <= 1 / 60 / 2 + 1e-9


@pytest.mark.parametrize(("link_errors", "shown"), [(0, 1), (2, 3)])
def test_the_status_follows_the_session_and_counts_callback_errors(
    link_errors: int, shown: int
) -> None:
    """One guest callback error, plus any the link counted in its own callbacks: all shown."""

    def broken() -> None:
        rig.link.callback_errors = link_errors
        with rig.session.errors.guard("on_message"):
            raise RuntimeError("a bug in a callback")

    rig = Rig()
    rig.clock.at(0.2, broken)
    rig.run(until=0.4)
    last = rig.status.last
    assert isinstance(last, StatusView)
    assert last.state == "connected" and last.controller == "Fake Pad"
    assert last.callback_errors == shown
    assert [f["callback_errors"] for f in rig.logged][-1] == shown
