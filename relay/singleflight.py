"""One call in flight at a time; whoever asks meanwhile waits for that call's result.

The token client fetches through a :class:`SingleFlight`: two threads that need
credentials at once cause one request to the token API (no stampede), and the
second one waits on a :class:`~concurrent.futures.Future`, not on a lock the
first one holds while it sleeps between retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs ``fn`` on the first caller's thread; callers arriving meanwhile share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two fields below; held only to read/set them
        self._flight: Future[T] | None = None
        self._waiters = 0

    @property
    def busy(self) -> bool:
        """True while a call is in flight."""
        with self._lock:
            return self._flight is not None

    @property
    def waiters(self) -> int:
        """How many callers are waiting for the call in flight (for status and tests)."""
        with self._lock:
            return self._waiters

    def run(self, fn: Callable[[], T]) -> T:
        """``fn()``'s result, or the result (or exception) of the call already in flight."""
        with self._lock:
            flight = self._flight
            if flight is None:
                mine: Future[T] = Future()
                self._flight = mine
            else:
                self._waiters += 1
        if flight is not None:
            try:
                return flight.result()
            finally:
                with self._lock:
                    self._waiters -= 1
        try:
            result = fn()
        except BaseException as exc:
            self._land(mine)
            mine.set_exception(exc)
            raise
        self._land(mine)
        mine.set_result(result)
        return result

    def _land(self, flight: Future[T]) -> None:
        with self._lock:
            if self._flight is flight:
                self._flight = None
