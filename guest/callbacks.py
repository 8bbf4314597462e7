"""Exceptions in callbacks that run on a library's thread: counted, logged, never lost.

paho calls :class:`guest.session.Session` on the link's thread and SDL calls
the virtual pad's rumble callback from inside its C code; an exception there
would be swallowed by the library (or unwind into C). :class:`CallbackErrors`
is the one place they go: :meth:`CallbackErrors.guard` catches and counts
them, logs the first of each callback with its traceback and later ones at
most once every ``log_every_s``, and :attr:`CallbackErrors.count` is what the
status line shows (``2 callback errors``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog


class CallbackErrors:
    """A thread-safe count of exceptions caught in library callbacks."""

    def __init__(
        self, *, log_every_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._logged_at: dict[str, float] = {}
        self._log_every = log_every_s
        self._clock = clock
        self._log = structlog.get_logger("guest.callbacks")

    @property
    def count(self) -> int:
        return self._count

    @contextmanager
    def guard(self, where: str) -> Iterator[None]:
        """Run a callback's body: an Exception in it is counted and logged, not raised."""
        try:
            yield
        except Exception:
            with self._lock:
                self._count += 1
                count = self._count
                now = self._clock()
                log = now - self._logged_at.get(where, -math.inf) >= self._log_every
                if log:
                    self._logged_at[where] = now
            if log:
                self._log.exception("callback_failed", callback=where, errors=count)
