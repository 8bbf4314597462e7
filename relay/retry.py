"""Retrying a call that may fail for a while: capped exponential backoff, jitter, Retry-After.

:class:`Retrier` runs one attempt after another until it returns, sleeping
between the failed ones. An attempt says "worth another try" by raising
:class:`Retryable` (anything else ends the run at once, unchanged). The pause
before try ``n + 1`` is :meth:`Backoff.delay` of ``n``: a random point in the
upper half of ``min(cap, base * 2 ** (n - 1))``; a ``Retry-After`` the server
sent makes it at least that long, and later runs of the same Retrier also wait
until then before their first try (the server asked everyone to hold off). A
run that would have to sleep past its deadline raises the caller's error
instead, naming the last failure.

A Retrier holds no caller's lock: it sleeps with only its own state set
(:meth:`Retrier.waiting` answers from any thread while it sleeps). It lets one
run at a time use it; callers that may race put it behind a
:class:`~relay.singleflight.SingleFlight`.
"""

from __future__ import annotations

import email.utils
import random
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

RETRY_AFTER_MAX_S = 600.0  # a Retry-After longer than this is read as this


class Retryable(Exception):
    """An attempt failed in a way another try may fix (network error, 5xx, 429).

    ``reason`` is the sentence a user reads if retrying ends; ``what`` a few words
    for a status line while waiting; ``retry_after_s`` the server's Retry-After.
    """

    def __init__(self, reason: str, what: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.what = what
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter in the upper half of each step."""

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: Callable[[], float] = random.random  # [0, 1)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, 30))
        return ceiling / 2 + self.rng() * ceiling / 2


def retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (wall clock): delta-seconds or an HTTP date.

    Capped at :data:`RETRY_AFTER_MAX_S`; None when absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - now), RETRY_AFTER_MAX_S)


@dataclass(eq=False)
class Retrier:
    """Runs attempts with backoff until one returns or the deadline would be passed.

    ``clock`` is monotonic seconds; ``sleep`` may raise to abort a run (a closed
    client). ``give_up`` builds the error raised when the deadline ends a run; it
    is chained to the last :class:`Retryable`.
    """

    backoff: Backoff
    _: KW_ONLY
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    give_up: Callable[[str], Exception]
    log: Any
    event: str = "retry"
    server: str = "server"  # "token API": "the token API asked to wait (Retry-After)"
    # guards the two fields below; never held while sleeping
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _not_before: float = field(default=0.0, init=False)  # the server asked: no call before
    _waiting: tuple[str, float] | None = field(default=None, init=False)  # (what failed, next try)

    def waiting(self) -> tuple[str, float] | None:
        """While a run sleeps before a retry: (what failed, seconds until the next try)."""
        with self._lock:
            waiting = self._waiting
        if waiting is None:
            return None
        return waiting[0], max(0.0, waiting[1] - self.clock())

    def run(self, attempt: Callable[[], T], deadline: float) -> T:
        """``attempt()`` until it returns; Retryable failures are retried until ``deadline``."""
        try:
            return self._run(attempt, deadline)
        finally:
            with self._lock:
                self._waiting = None

    def _run(self, attempt: Callable[[], T], deadline: float) -> T:
        tries = 0
        while True:
            with self._lock:
                hold_off = self._not_before - self.clock()
            if hold_off > 0:
                asked = Retryable(
                    f"the {self.server} asked to wait (Retry-After)",
                    f"{self.server} asked to wait",
                )
                self._pause(hold_off, deadline, asked, tries)
            tries += 1
            try:
                return attempt()
            except Retryable as exc:
                failure = exc
            delay = self.backoff.delay(tries)
            if failure.retry_after_s is not None:
                delay = max(delay, failure.retry_after_s)
                with self._lock:
                    self._not_before = self.clock() + failure.retry_after_s
            self._pause(delay, deadline, failure, tries)

    def _pause(self, delay: float, deadline: float, failure: Retryable, tries: int) -> None:
        if self.clock() + delay > deadline:
            suffix = f" after {tries} attempts" if tries > 1 else ""
            raise self.give_up(f"{failure.reason}{suffix}") from failure
        self.log.warning(self.event, attempt=tries, delay_s=round(delay, 3), reason=failure.reason)
        with self._lock:
            self._waiting = (failure.what, self.clock() + delay)
        self.sleep(delay)
