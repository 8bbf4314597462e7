"""Budgets for what guests send the host: frames in per user, Rejects out per user and in all.

Anything a stranger can send is bounded here, before decoding and after the seat table:

- :meth:`Intake.admit` is a token bucket per user (``INTAKE_RATE_HZ`` frames per second,
  ``INTAKE_BURST`` at once): one user flooding ``in/{user}`` has the rest of their frames
  dropped (counted as ``over_budget``) before they are decoded, so the flood costs the
  network thread a dictionary look-up per frame and cannot pile up ahead of another
  user's frames. A real guest sends at most ``max_rate_hz`` (500 by default) Inputs plus
  a Ping a second; the burst absorbs a broker flushing a backlog after an outage.
- :meth:`Intake.may_reject` decides whether a Reject may go out. Per user (across
  epochs, so a guest changing epoch on every frame gains nothing): at most one Reject
  per ``REJECT_INTERVAL_S``, and only while the user's byte credit covers it; the credit
  is the bytes that user sent (capped at ``REJECT_CREDIT_CAP``), plus one Reject's worth
  (``REJECT_ALLOWANCE``) the first time the user is seen, so a lone Hello from a user
  who is not allowed is answered at once. In all: at most ``REJECT_GLOBAL_BURST`` at
  once and ``REJECT_GLOBAL_HZ`` a second. The caller logs a Reject only when it is sent,
  so the log lines follow the same limits.

So per user, Reject bytes out never exceed that user's frame bytes in plus one
allowance; the user table holds at most ``MAX_USERS`` entries (the first seen is
forgotten first).

Only paho's network thread calls :meth:`admit`, :meth:`reject_due` and
:meth:`may_reject` (Rejects come only from frames); the main thread reads the
counters through :meth:`counts`. The Intake owns one lock for both, so a status
line never sees counters half updated (an uncontended lock costs well under a
microsecond a frame).
"""

from __future__ import annotations

import threading
from typing import Final

INTAKE_RATE_HZ: Final = 2500.0  # frames a second per user (a real guest: <= 2000 + Pings)
INTAKE_BURST: Final = 2500.0  # frames at once per user (a backlog after an outage)
REJECT_INTERVAL_S: Final = 1.0  # at most one Reject a second per user, across epochs
REJECT_ALLOWANCE: Final = 128  # bytes of credit a user starts with (one Reject)
REJECT_CREDIT_CAP: Final = 1024  # bytes of credit a user can save up
REJECT_GLOBAL_HZ: Final = 10.0  # Rejects a second, all users together
REJECT_GLOBAL_BURST: Final = 20.0
MAX_USERS: Final = 1024  # users whose budgets are remembered


class _User:
    __slots__ = ("credit", "last_reject", "tokens", "updated")

    def __init__(self, now: float) -> None:
        self.tokens = INTAKE_BURST
        self.updated = now
        self.credit = REJECT_ALLOWANCE
        self.last_reject = float("-inf")


class Intake:
    """Per-user frame budget and the Reject limiter (see the module docstring)."""

    def __init__(
        self,
        *,
        rate_hz: float = INTAKE_RATE_HZ,
        burst: float = INTAKE_BURST,
        max_users: int = MAX_USERS,
    ) -> None:
        self._rate = rate_hz
        self._burst = burst
        self._max_users = max_users
        self._users: dict[str, _User] = {}  # insertion order: the oldest is forgotten first
        self._global_tokens = REJECT_GLOBAL_BURST
        self._global_updated: float | None = None
        self._lock = threading.Lock()
        self._over_budget = 0
        self._rejects_sent = 0
        self._rejects_suppressed = 0
        self._reject_bytes = 0
        self._bytes_in = 0

    def _user(self, user: str, now: float) -> _User:
        found = self._users.get(user)
        if found is None:
            if len(self._users) >= self._max_users:
                del self._users[next(iter(self._users))]  # the longest known goes first
            found = self._users[user] = _User(now)
            found.tokens = self._burst
        return found

    def admit(self, user: str, size: int, now: float) -> bool:
        """Whether ``user``'s frame of ``size`` bytes may be processed (counted if not)."""
        with self._lock:
            entry = self._users.get(user) or self._user(user, now)
            self._bytes_in += size
            credit = entry.credit + size
            entry.credit = credit if credit < REJECT_CREDIT_CAP else REJECT_CREDIT_CAP
            tokens = entry.tokens + (now - entry.updated) * self._rate
            entry.updated = now
            if tokens > self._burst:  # noqa: PLR1730 (min() is a call on the hot path)
                tokens = self._burst
            if tokens < 1.0:
                entry.tokens = tokens
                self._over_budget += 1
                return False
            entry.tokens = tokens - 1.0
            return True

    def reject_due(self, user: str, now: float) -> bool:
        """Whether a Reject to ``user`` could go out now (spends nothing).

        The host skips decoding a frame from a user who is not allowed unless it is
        due, so a flood of them costs a look-up each.
        """
        entry = self._users.get(user)
        return entry is None or now - entry.last_reject >= REJECT_INTERVAL_S

    def may_reject(self, user: str, size: int, now: float) -> bool:
        """Whether a Reject of ``size`` bytes may go to ``user`` now (spends the credit)."""
        with self._lock:
            entry = self._user(user, now)
            last = self._global_updated
            tokens = self._global_tokens
            if last is not None:
                tokens = min(REJECT_GLOBAL_BURST, tokens + (now - last) * REJECT_GLOBAL_HZ)
            self._global_updated = now
            self._global_tokens = tokens
            if now - entry.last_reject < REJECT_INTERVAL_S or entry.credit < size or tokens < 1:
                self._rejects_suppressed += 1
                return False
            entry.last_reject = now
            entry.credit -= size
            self._global_tokens = tokens - 1
            self._rejects_sent += 1
            self._reject_bytes += size
            return True

    def counts(self) -> dict[str, int]:
        """A copy of the counters for the status line (any thread)."""
        with self._lock:
            return {
                "over_budget": self._over_budget,
                "rejects_sent": self._rejects_sent,
                "rejects_suppressed": self._rejects_suppressed,
                "reject_bytes_out": self._reject_bytes,
                "bytes_in": self._bytes_in,
            }
