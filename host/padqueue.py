"""The virtual 2P input queue between paho's network thread and the pads.

:class:`PadQueue` is the data structure (no locking of its own: its owner,
:class:`host.writer.PadWriter`, holds the lock): one bounded deque per seat,
so each seat keeps its order. A new state coalesces with the state queued just
before it only when both hold the same buttons, so the pad skips an
intermediate stick position under overload but never a button edge: a press
followed by its release always reaches the pad. Neutral items are never
merged. Past ``capacity`` items for one seat (a sink stuck for seconds) the
oldest item is dropped and counted as ``queue_overflow``.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

from host.effects import Apply, PadItem

DEFAULT_CAPACITY: Final = 4096


class QueueCounts(NamedTuple):
    coalesced: int  # states merged into the one queued after them
    overflow: int  # states dropped because a seat's queue was full


class PadQueue:
    """Per-seat FIFO of pad states; merges consecutive states only when no button edge is lost."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._seats: dict[int, deque[PadItem]] = {}
        self._size = 0
        self._coalesced = 0
        self._overflow = 0

    def __len__(self) -> int:
        return self._size

    def push(self, item: PadItem) -> None:
        queue = self._seats.get(item.seat)
        if queue is None:
            queue = self._seats[item.seat] = deque()
        if queue and isinstance(item, Apply):
            tail = queue[-1]
            if isinstance(tail, Apply) and tail.frame.buttons == item.frame.buttons:
                queue[-1] = item  # only stick/trigger positions in between are skipped
                self._coalesced += 1
                return
        queue.append(item)
        self._size += 1
        if len(queue) > self._capacity:
            queue.popleft()
            self._size -= 1
            self._overflow += 1

    def pop_all(self) -> list[PadItem]:
        """Everything queued, each seat's items in order (seats one after another)."""
        items: list[PadItem] = []
        for queue in self._seats.values():
            items.extend(queue)
            queue.clear()
        self._size = 0
        return items

    def counts(self) -> QueueCounts:
        return QueueCounts(self._coalesced, self._overflow)
