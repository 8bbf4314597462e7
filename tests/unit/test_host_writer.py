"""The virtual 2P input queue: order per seat, coalescing that never loses a button edge,
and the writer thread that applies states and fires the timers without frames arriving."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from host.effects import Apply, Effect, Neutral
from host.faults import Faults
from host.padqueue import PadQueue
from host.seats import SeatTable
from host.sinks.base import FrameMeta, RumbleCallback
from host.writer import PadWriter
from relay.clock import SystemClock
from relay.frames import Hello, Input, PadState


def item(seat: int, seq: int, buttons: int, lx: int = 0) -> Apply:
    return Apply(seat, "u", Input.of(1, seq, 0, PadState(buttons, lx)))


def runs(values: Sequence[int]) -> list[int]:
    """``values`` with consecutive repeats collapsed: the edges a pad sees."""
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def test_axis_only_changes_coalesce_into_the_newest() -> None:
    q = PadQueue()
    for seq in range(1, 6):
        q.push(item(2, seq, 0, lx=seq * 100))
    got = q.pop_all()
    assert [a.frame.seq for a in got] == [5]
    assert q.counts().coalesced == 4


def test_press_then_release_is_never_merged() -> None:
    q = PadQueue()
    q.push(item(2, 1, 0))
    q.push(item(2, 2, 1))  # press
    q.push(item(2, 3, 0))  # release
    assert [a.frame.buttons for a in q.pop_all()] == [0, 1, 0]


def test_neutral_is_never_merged_and_keeps_its_place() -> None:
    q = PadQueue()
    q.push(item(2, 1, 0))
    q.push(Neutral(2, "stale", "u", 1))
    q.push(item(2, 2, 0))
    got = q.pop_all()
    assert [type(a) for a in got] == [Apply, Neutral, Apply]


def test_seats_keep_their_own_order() -> None:
    q = PadQueue()
    for seq in range(1, 5):
        q.push(item(2, seq, seq % 2))
        q.push(item(3, seq, seq % 2))
    got = q.pop_all()
    for seat in (2, 3):
        assert [a.frame.seq for a in got if a.seat == seat] == [1, 2, 3, 4]


def test_overflow_drops_the_oldest_and_counts() -> None:
    q = PadQueue(capacity=4)
    for seq in range(1, 8):
        q.push(item(2, seq, seq % 2))
    got = q.pop_all()
    assert [a.frame.seq for a in got] == [4, 5, 6, 7]
    assert q.counts().overflow == 3


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([2, 3]),
            st.integers(0, 3),  # buttons: few values, so equal neighbours are common
            st.integers(-5, 5),  # lx
            st.booleans(),  # pop after this push (the consumer catching up)
        ),
        max_size=200,
    )
)
def test_no_button_edge_is_ever_lost(pushes: list[tuple[int, int, int, bool]]) -> None:
    """Whatever the interleaving, each seat sees its button edges in order and its last state."""
    q = PadQueue()
    delivered: list[Apply] = []
    seqs = {2: 0, 3: 0}
    sent: dict[int, list[Apply]] = {2: [], 3: []}
    for seat, buttons, lx, pop in pushes:
        seqs[seat] += 1
        a = item(seat, seqs[seat], buttons, lx)
        sent[seat].append(a)
        q.push(a)
        if pop:
            delivered.extend(q.pop_all())  # type: ignore[arg-type]
    delivered.extend(q.pop_all())  # type: ignore[arg-type]
    for seat in (2, 3):
        got = [a for a in delivered if a.seat == seat]
        got_seqs = [a.frame.seq for a in got]
        assert got_seqs == sorted(got_seqs)  # order kept
        assert runs([a.frame.buttons for a in got]) == runs([a.frame.buttons for a in sent[seat]])
        if sent[seat]:
            assert got[-1] == sent[seat][-1]  # the newest state always arrives


class RecordingSink:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: list[tuple[str, int, object]] = []

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        pass

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        with self.cond:
            self.calls.append(("apply", seat, meta.seq))
            self.cond.notify_all()

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        with self.cond:
            self.calls.append(("neutral", seat, reason))
            self.cond.notify_all()

    def close(self) -> None:
        pass

    def wait(self, predicate, timeout: float = 10.0) -> list:  # type: ignore[no-untyped-def]
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.calls), timeout), self.calls
            return list(self.calls)


def test_writer_applies_in_order_and_replies_go_to_the_handler() -> None:
    sink = RecordingSink()
    handled: list[Effect] = []
    table = SeatTable([2], {}, stale_s=5, idle_s=60)
    clock = SystemClock()
    writer = PadWriter(table, sink, clock, Faults())
    writer.start(handled.extend)
    try:
        rest = writer.submit("alice", Hello(1, 1, "a", "b"), clock.monotonic())
        assert len(rest) == 2  # SeatChange + Welcome, for the caller
        for seq in range(1, 101):
            writer.submit("alice", Input.of(1, seq, 0, PadState(seq % 2)), clock.monotonic())
        calls = sink.wait(lambda c: ("apply", 2, 100) in c)
        seqs = [c[2] for c in calls if c[0] == "apply"]
        assert seqs == sorted(seqs)
    finally:
        writer.stop()
    assert not writer.stats().alive


def test_stale_timer_fires_with_no_frames_arriving() -> None:
    sink = RecordingSink()
    table = SeatTable([2], {}, stale_s=0.05, idle_s=1)
    clock = SystemClock()
    freed = threading.Event()
    writer = PadWriter(table, sink, clock, Faults())
    writer.start(lambda effects: freed.set())
    try:
        writer.submit("alice", Input.of(1, 1, 0, PadState(1)), clock.monotonic())
        calls = sink.wait(lambda c: ("neutral", 2, "stale") in c)
        assert calls[0] == ("apply", 2, 1)
        assert freed.wait(10)  # idle: the seat is freed
        assert writer.occupancy() == [(2, "")]
    finally:
        writer.stop()


class SlowCheckingSink(RecordingSink):
    """Records which thread wrote, sleeps now and then, and fails on overlapping writes."""

    nonblocking = True

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.threads: set[str] = set()
        self.overlaps = 0

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        if self.inside:
            self.overlaps += 1
        self.inside = True
        self.threads.add(threading.current_thread().name)
        if meta.seq is not None and meta.seq % 97 == 0:
            time.sleep(0.002)  # a slow write: later frames must queue behind it
        super().apply(seat, state, meta)
        self.inside = False


def us(now: float) -> int:
    """``now`` as the 32-bit microsecond stamp a guest on this machine would send."""
    return int(now * 1e6) % (1 << 32)


def test_fast_path_writes_on_the_submitting_thread_one_writer_at_a_time() -> None:
    sink = SlowCheckingSink()
    table = SeatTable([2], {}, stale_s=0.02, idle_s=60)  # stale neutrals race with the frames
    clock = SystemClock()
    writer = PadWriter(table, sink, clock, Faults())
    writer.start(lambda effects: None)
    try:
        for seq in range(1, 2001):
            now = clock.monotonic()
            writer.submit("alice", Input.of(1, seq, us(now), PadState(seq % 2)), now)
            if seq % 500 == 0:
                time.sleep(0.05)  # silence: the writer thread fires a stale neutral
        calls = sink.wait(lambda c: ("apply", 2, 2000) in c)
    finally:
        writer.stop()
    seqs = [c[2] for c in calls if c[0] == "apply"]
    assert seqs == list(range(1, 2001))  # every edge, in order
    assert ("neutral", 2, "stale") in calls
    assert sink.overlaps == 0
    assert threading.current_thread().name in sink.threads  # the fast path was taken


class ThreadRecordingSink(RecordingSink):
    """Records which thread wrote each state; ``nonblocking`` picks the path."""

    def __init__(self, nonblocking: bool) -> None:
        super().__init__()
        self.nonblocking = nonblocking
        self.threads: set[str] = set()

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        self.threads.add(threading.current_thread().name)
        super().apply(seat, state, meta)


def _five_hundred_frames(nonblocking: bool) -> tuple[ThreadRecordingSink, PadWriter, list]:
    sink = ThreadRecordingSink(nonblocking)
    # stale_s and the heartbeat far off: no timer wakes the thread during the test
    table = SeatTable([2], {}, stale_s=30, idle_s=60)
    clock = SystemClock()
    writer = PadWriter(table, sink, clock, Faults(), heartbeat_s=30)
    writer.start(lambda effects: None)
    try:
        for seq in range(1, 501):
            now = clock.monotonic()
            writer.submit("alice", Input.of(1, seq, us(now), PadState(seq % 2)), now)
            time.sleep(0.001)  # paced as a guest sends (1 ms apart): a wake-up has time to show
        calls = sink.wait(lambda c: ("apply", 2, 500) in c)
        return sink, writer, calls
    finally:
        writer.stop()


def test_500_frames_on_the_direct_path_do_not_wake_the_writer_thread() -> None:
    """A non-blocking sink: every state written on the submitting thread, the writer asleep.

    One wake-up at most: the seat taken arms a stale timer sooner than the thread's heartbeat.
    """
    sink, writer, calls = _five_hundred_frames(nonblocking=True)
    assert [c[2] for c in calls if c[0] == "apply"] == list(range(1, 501))
    assert sink.threads == {threading.current_thread().name}
    assert writer.stats().wakeups <= 2


def test_500_frames_on_the_blocking_path_all_reach_the_sink_through_the_writer_thread() -> None:
    """A sink that may block: the writer thread is woken for the states and writes every one."""
    sink, writer, calls = _five_hundred_frames(nonblocking=False)
    assert [c[2] for c in calls if c[0] == "apply"] == list(range(1, 501))  # no edge lost
    assert sink.threads == {"pad-writer"}
    assert writer.stats().wakeups >= 1
