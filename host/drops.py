"""Why the host dropped a frame, and the counters that say how often.

The decoder's reasons are :class:`relay.frames.Drop` (oversized, malformed,
unknown_kind, out_of_range); the host adds its own in :class:`HostDrop`. Both
are ``StrEnum``: a counter keyed by either reads by the plain string, which is
what the status line and the logs show.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TypeAlias

from relay.frames import Drop


class HostDrop(enum.StrEnum):
    """Why a frame that decoded (or was never decoded) changed nothing on the host."""

    RETAINED = "retained"
    BAD_TOPIC = "bad_topic"
    UNEXPECTED_KIND = "unexpected_kind"  # a host -> guest frame sent to the host
    NOT_ALLOWED = "not_allowed"
    FULL = "full"
    STALE_EPOCH = "stale_epoch"
    OLD_SEQ = "old_seq"
    LATE = "late"  # rule 9: older than stale_ms by the sender's clock
    DUPLICATE = "duplicate"
    NOT_SEATED = "not_seated"
    PROTOCOL = "protocol"  # a Hello with a proto this host does not speak


DropReason: TypeAlias = Drop | HostDrop


class DropCounter:
    """Drops by reason: counted on one thread, read from any (a lock of its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, reason: DropReason) -> None:
        with self._lock:
            self._counts[reason] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def merge_counts(*counters: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Several ``(reason, count)`` sources as one sorted dict (for logs)."""
    total: Counter[str] = Counter()
    for pairs in counters:
        for reason, n in pairs:
            total[str(reason)] += n  # a plain str key, whichever enum counted it
    return dict(sorted(total.items()))
