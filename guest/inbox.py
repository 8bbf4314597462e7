"""What the link's thread hands the main thread: Rumbles to play and a resync after a connect.

The main thread owns the pad, so a Rumble that arrives on the link's thread
waits here until the loop's next wake-up (``on_news`` pokes the loop's pipe),
as does the word that a (re)connect happened and the pad state must go out
again. The newest 8 Rumbles are kept; older ones are stale by then.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from relay.frames import Rumble

RUMBLES_KEPT = 8


class Inbox:
    """Filled on the link's thread, emptied on the main thread; one lock between them."""

    def __init__(self, on_news: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._rumbles: deque[Rumble] = deque(maxlen=RUMBLES_KEPT)
        self._resync = False
        self._on_news = on_news

    def rumble(self, frame: Rumble) -> None:
        with self._lock:
            self._rumbles.append(frame)
        self._on_news()

    def resync(self) -> None:
        """A connect happened; the caller pokes the loop once it has said Hello."""
        with self._lock:
            self._resync = True

    @property
    def pending(self) -> bool:
        """Something waits (read without the lock: a hint, checked again when taken)."""
        return bool(self._rumbles) or self._resync

    def take_rumbles(self) -> list[Rumble]:
        if not self._rumbles:  # the common case, without the lock
            return []
        with self._lock:
            rumbles = list(self._rumbles)
            self._rumbles.clear()
        return rumbles

    def take_resync(self) -> bool:
        """True once after each connect: the current pad state must go out now."""
        if not self._resync:
            return False
        with self._lock:
            resync, self._resync = self._resync, False
        return resync
