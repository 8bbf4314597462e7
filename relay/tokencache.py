"""How long a token lives, when to refresh it, and where the token client keeps it.

A token API answers ``expires_in`` in seconds, as DESIGN says, but hosted
providers also send an absolute time (epoch seconds or milliseconds), a number
in a string, or nothing: :func:`lifetime` reads them all, falling back to the
lifetime the client asked for. A :class:`Token` is usable until it expires and
is refreshed once ``refresh_fraction`` of its lifetime has passed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from relay.secrets import Secret

Kind = Literal["app", "user"]
MINIMUM_LIFETIME_S = 30.0  # an absolute expiry already (nearly) past still gets this long
_EPOCH_MS = 1e12  # larger: epoch milliseconds
_EPOCH_S = 1e9  # larger: epoch seconds (1e9 s is 31 years: no relative lifetime is this long)


def lifetime(raw: float | str | None, requested: float, wall_now: float) -> float:
    """Seconds a token lives: ``expires_in`` as seconds or as an absolute epoch time.

    A missing, empty, non-numeric or non-positive value means ``requested``.
    """
    match raw:
        case str() if raw.strip().isdigit():
            value: float = int(raw)
        case int() | float():
            value = raw
        case _:
            return float(requested)
    if value <= 0:
        return float(requested)
    if value > _EPOCH_MS:
        return max(MINIMUM_LIFETIME_S, value / 1000 - wall_now)
    if value > _EPOCH_S:
        return max(MINIMUM_LIFETIME_S, value - wall_now)
    return float(value)


@dataclass(frozen=True, slots=True)
class Token:
    value: Secret
    lifetime: float
    expires_at: float  # monotonic clock time
    refresh_at: float  # monotonic clock time

    @classmethod
    def issued(cls, value: Secret, lifetime: float, now: float, refresh_fraction: float) -> Token:
        """A token that arrived at ``now`` (monotonic) and lives ``lifetime`` seconds."""
        return cls(value, lifetime, now + lifetime, now + lifetime * refresh_fraction)

    def fresh(self, now: float) -> bool:
        """Before the refresh point: use it without asking for a new one."""
        return now < self.refresh_at

    def usable(self, now: float) -> bool:
        """Not expired yet (it may be due for a refresh)."""
        return now < self.expires_at


class TokenCache:
    """The app and user tokens of one token client; its lock is held only to read or set one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[Kind, Token] = {}

    def get(self, kind: Kind) -> Token | None:
        with self._lock:
            return self._tokens.get(kind)

    def put(self, kind: Kind, token: Token | None) -> None:
        """Keep ``token`` (None: forget the one kept)."""
        with self._lock:
            if token is None:
                self._tokens.pop(kind, None)
            else:
                self._tokens[kind] = token
