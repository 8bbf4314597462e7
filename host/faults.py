"""Exceptions raised in callbacks on a library's thread: counted, logged, shown in status.

paho runs the daemon's ``on_message`` and ``on_connect`` on its network thread,
the uinput sink's force-feedback reader runs on a thread of its own, and the
pad writer runs the daemon's effect handler on its thread: an exception there
would end that thread, or vanish into a library's log. Each of those places
catches it and calls :meth:`Faults.record`, which counts it by place, logs it
(at most once per ``throttle_s`` per place, with the count so far) and keeps
the count for the host's status line (``callback errors N``).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import structlog

from relay.logs import Throttle


class Faults:
    """Callback exceptions by place (``on_message``, ``uinput_ff``, ...); any thread may record."""

    def __init__(self, logger: Any = None, throttle_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._throttle = Throttle(throttle_s)
        self._log = logger if logger is not None else structlog.get_logger("host.faults")

    def record(self, where: str, exc: BaseException) -> None:
        """Count ``exc``, raised in the callback ``where``; log it unless it was logged lately."""
        with self._lock:
            self._counts[where] += 1
            count = self._counts[where]
            loud = self._throttle.allow(where)
        if loud:
            self._log.error("callback_failed", where=where, count=count, exc_info=exc)

    def counts(self) -> dict[str, int]:
        """Exceptions so far, by place (a copy)."""
        with self._lock:
            return dict(sorted(self._counts.items()))
