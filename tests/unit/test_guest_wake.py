"""The guest's wake-up path on real descriptors: a pty stands in for the pad's evdev node.

Every timer of the loop under test is 100 s away (tests/support/guest_loop.py),
so a frame that arrives within the wait can only have been sent because the
node turned readable.
"""

from __future__ import annotations

import contextlib
import os
import pty
import tty
from collections.abc import Iterator

import pytest

from guest.wake import NodeWaker, Waiter, node_waker
from relay.frames import NEUTRAL, PadState
from tests.support.guest_loop import WAIT, running_loop

EVENT = bytes(24)  # the size of one struct input_event on a 64-bit kernel


@pytest.fixture
def node() -> Iterator[tuple[int, str]]:
    """(the writing side, the path of a device node that reads what is written)."""
    master, slave = pty.openpty()
    tty.setraw(slave)  # bytes through as written, no line buffering
    path = os.ttyname(slave)
    try:
        yield master, path
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_a_resting_node_is_quiet_and_a_change_makes_it_readable(node: tuple[int, str]) -> None:
    master, path = node
    waker = node_waker(path)
    assert isinstance(waker, NodeWaker)
    waiter = Waiter()
    waiter.watch([waker.fileno()])
    try:
        assert waiter.wait(0) == []
        os.write(master, EVENT * 3)
        assert waiter.wait(WAIT) == [waker.fileno()]
        assert waker.drain()
        assert waiter.wait(0) == []  # drained: quiet again until the next change
    finally:
        waker.close()


def test_a_node_that_goes_away_says_so_and_closes(node: tuple[int, str]) -> None:
    """An unplugged pad's node reports an error once; the waker closes instead of spinning."""
    master, path = node
    waker = NodeWaker(path)
    waiter = Waiter()
    waiter.watch([waker.fileno()])
    os.close(master)  # the far side hangs up, as an unplugged evdev node does (ENODEV)
    assert waiter.wait(WAIT) == [waker.fileno()]
    assert not waker.drain()
    assert waker.fileno() == -1


def test_no_waker_where_the_node_cannot_be_used(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "event0").write_bytes(b"")
    assert node_waker(None) is None
    assert node_waker("") is None
    assert node_waker(str(tmp_path / "event0")) is None  # not a device node path
    assert node_waker("/dev/input/no-such-event-node") is None


class NodeSource:
    """A PadSource whose pad "changes" when its node turns readable."""

    def __init__(self, path: str) -> None:
        self._waker: NodeWaker | None = NodeWaker(path)
        self.pending: list[PadState] = []
        self.polls = 0

    @property
    def state(self) -> PadState:
        return NEUTRAL

    @property
    def controller_name(self) -> str | None:
        return "pty pad"

    @property
    def waker(self) -> NodeWaker | None:
        return self._waker

    def poll(self) -> list[PadState]:
        self.polls += 1
        if self._waker is not None:
            self._waker.drain()
        states, self.pending = self.pending, []
        return states

    def rumble(self, low: int, high: int, ms: int) -> bool:
        return False

    def close(self) -> None:
        if self._waker is not None:
            self._waker.close()


def test_the_loop_sends_a_change_as_soon_as_the_node_turns_readable(
    node: tuple[int, str],
) -> None:
    master, path = node
    source = NodeSource(path)
    try:
        with running_loop(source) as (loop, published):
            assert published.wait(1)[0].buttons == 0  # the first keyframe, at start
            woken = loop.wakeups
            source.pending = [NEUTRAL._replace(buttons=1, lx=1234)]
            os.write(master, EVENT)  # the pad changed: its node turns readable
            got = published.wait(2)[1]
            assert (got.buttons, got.lx, got.seq) == (1, 1234, 2)
            assert loop.wakeups - woken <= 2  # woken by the node, not by repeated polling
    finally:
        source.close()
