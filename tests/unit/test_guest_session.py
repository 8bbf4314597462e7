"""Session: Hello until Welcome, Ping/Pong RTT, Reject handling, Rumble hand-over, HostState."""

from __future__ import annotations

import pytest

from guest.rtt import RttStats
from guest.session import Session
from relay.errors import SessionRejected
from relay.frames import (
    Bye,
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
from relay.linkstatus import LinkState, LinkStatus
from relay.topics import Topics

codec = FrameCodec()
TOPICS = Topics("pfx", "s1")
EPOCH = 4242


class Harness:
    def __init__(self) -> None:
        self.sent: list[tuple[str, object, int]] = []
        self.now = 100.0
        self.stamp = 5_000_000
        self.session = Session(
            TOPICS,
            "alice",
            EPOCH,
            self.publish,
            name="Alice",
            controller=lambda: "Pad X",
            clock=lambda: self.now,
            stamp=lambda: self.stamp,
        )

    def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        self.sent.append((topic, codec.decode(payload), qos))
        return True

    def connect(self) -> None:
        self.session.on_status(LinkStatus(LinkState.CONNECTED))
        self.session.on_connect()

    def deliver(self, frame: object, topic: str | None = None, retained: bool = False) -> None:
        self.session.on_message(topic or TOPICS.output("alice"), codec.encode(frame), retained)  # type: ignore[arg-type]

    def kinds(self) -> list[type]:
        return [type(frame) for _, frame, _ in self.sent]


def test_hello_on_connect_with_qos1_then_every_second_until_welcome() -> None:
    h = Harness()
    h.connect()
    assert h.sent == [(TOPICS.input("alice"), Hello(EPOCH, 1, "Alice", "Pad X"), 1)]
    assert h.session.inbox.take_resync()
    assert not h.session.inbox.take_resync()
    for step in range(1, 4):
        h.now = 100.0 + step + 0.01
        h.session.tick(h.now)
    assert h.kinds().count(Hello) == 4
    h.deliver(Welcome(EPOCH, 2))
    assert h.session.view().seat == 2
    for step in range(4, 8):
        h.now = 100.0 + step + 0.01
        h.session.tick(h.now)
    assert h.kinds().count(Hello) == 4  # no more after the Welcome
    assert h.kinds().count(Ping) >= 4


def test_welcome_for_another_epoch_is_ignored() -> None:
    h = Harness()
    h.connect()
    h.deliver(Welcome(EPOCH + 1, 3))
    assert h.session.view().seat is None


def test_nothing_is_sent_while_not_connected() -> None:
    h = Harness()
    h.session.on_status(LinkStatus(LinkState.RECONNECTING, "connection lost"))
    h.session.tick(200.0)
    assert h.sent == []
    assert h.session.view().state == "reconnecting"
    assert h.session.view().note == "connection lost"


def test_pong_gives_rtt_median_and_jitter() -> None:
    h = Harness()
    h.connect()
    for rtt in (1000, 3000, 2000):
        h.stamp += 10_000
        h.deliver(Pong(EPOCH, h.stamp - rtt, 2))
    view = h.session.view()
    assert view.rtt_p50_ms == pytest.approx(2.0)
    assert view.jitter_ms == pytest.approx(1.5)  # |3-1| and |2-3| ms
    assert view.seat == 2
    h.deliver(Pong(EPOCH + 1, h.stamp - 50_000, 2))  # someone else's: ignored
    assert len(h.session.rtt) == 3


def test_rtt_from_the_future_is_ignored() -> None:
    h = Harness()
    h.connect()
    h.deliver(Pong(EPOCH, h.stamp + 10, 0))
    assert h.session.view().rtt_p50_ms is None


@pytest.mark.parametrize("code", [RejectCode.NOT_ALLOWED, RejectCode.PROTOCOL, RejectCode.REPLACED])
def test_final_rejects_become_session_rejected(code: RejectCode) -> None:
    h = Harness()
    h.connect()
    h.deliver(Reject(EPOCH, code, "nope"))
    assert isinstance(h.session.fatal, SessionRejected)
    assert h.session.fatal.exit_code == 75
    assert "nope" in str(h.session.fatal)
    assert h.session.view().state == "rejected"


def test_full_house_waits_for_a_seat_and_keeps_asking() -> None:
    h = Harness()
    h.connect()
    h.deliver(Reject(EPOCH, RejectCode.FULL, "all seats taken"))
    assert h.session.fatal is None
    assert "waiting for a seat" in h.session.view().note
    h.now += 1.5
    h.session.tick(h.now)
    assert h.kinds().count(Hello) == 2
    h.deliver(Welcome(EPOCH, 3))
    assert (h.session.view().seat, h.session.view().note) == (3, "")


def test_reject_for_another_epoch_is_ignored() -> None:
    h = Harness()
    h.connect()
    h.deliver(Reject(EPOCH - 1, RejectCode.NOT_ALLOWED, "old"))
    assert h.session.fatal is None


def test_rumble_is_queued_for_the_main_thread() -> None:
    h = Harness()
    h.connect()
    h.deliver(Rumble(100, 200, 300))
    h.deliver(Rumble(0, 0, 0))
    assert h.session.inbox.take_rumbles() == [Rumble(100, 200, 300), Rumble(0, 0, 0)]
    assert h.session.inbox.take_rumbles() == []


def test_host_state_sets_online_and_seat_and_offline_clears_the_seat() -> None:
    h = Harness()
    h.connect()
    h.deliver(HostState(True, [(2, "bob"), (3, "alice")]), topic=TOPICS.host, retained=True)
    view = h.session.view()
    assert (view.host_online, view.seat) == (True, 3)
    h.deliver(HostState(False, []), topic=TOPICS.host, retained=True)
    view = h.session.view()
    assert (view.host_online, view.seat) == (False, None)
    h.now += 1.5
    h.session.tick(h.now)
    assert h.kinds().count(Hello) == 2  # asking again


def test_garbage_and_retained_out_messages_are_dropped() -> None:
    h = Harness()
    h.connect()
    h.session.on_message(TOPICS.output("alice"), b"\xc1\xc1", False)
    h.deliver(Welcome(EPOCH, 2), retained=True)
    assert h.session.dropped == 1
    assert h.session.view().seat is None


def test_will_and_bye_are_bye_with_our_epoch_on_the_in_topic() -> None:
    h = Harness()
    for message in (h.session.will(), h.session.bye()):
        assert message.topic == TOPICS.input("alice")
        assert message.qos == 1
        assert not message.retain
        assert codec.decode(message.payload) == Bye(EPOCH)
    assert h.session.subscriptions == [(TOPICS.output("alice"), 1), (TOPICS.host, 1)]


def test_rtt_stats_window() -> None:
    stats = RttStats(size=3)
    assert (stats.p50_ms, stats.jitter_ms) == (None, None)
    for value in (5000, 1000, 2000, 3000):
        stats.add(value)
    assert stats.history_ms() == [1.0, 2.0, 3.0]
    assert stats.p50_ms == 2.0
    assert stats.jitter_ms == 1.0
