"""Round-trip times from Ping/Pong: the median and the jitter over the last samples."""

from __future__ import annotations

import itertools
import statistics
from collections import deque

MAX_RTT_US = 30_000_000  # anything longer is not an answer to a ping we still remember


class RttStats:
    """Round-trip samples (microseconds): median and jitter over the last ``size``.

    The jitter is the mean change between consecutive samples, as RTP reports it.
    """

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
