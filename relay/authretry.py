"""When a link asks for fresh credentials and when it gives up: the auth-retry policy in one place.

- A CONNACK that refuses the credentials (bad user name or password, not
  authorized) makes the next attempt ask the source for fresh ones
  (``refresh()``) instead of the cached ones (``get()``).
- After ``max_retries`` such refusals in a row the link gives up: state REFUSED,
  an :class:`~relay.errors.AuthError` (exit 77). A connect that is accepted
  starts the count again.
- An AuthError from the credential source itself (the token API refused the app
  credentials) gives up at once: retrying bad credentials only locks the account.
- Any other failure to get credentials (the token API is down) is retried on the
  next attempt, after paho's backoff; a refresh that was due stays due.
- Any other refusal (server unavailable, bad protocol version, ...) is a failed
  attempt like an unreachable broker.

An :class:`AuthRetry` lives on paho's network thread (the link calls it from its
paho callbacks only), so it has no lock.
"""

from __future__ import annotations

import enum

from relay.errors import AuthError, CoplayError

# CONNACK reason codes meaning "these credentials are wrong" (MQTT 5 values; paho
# maps the MQTT 3.1.1 return codes 4 and 5 onto the same ones).
AUTH_REFUSED_CODES = frozenset({0x86, 0x87})  # bad user name or password, not authorized


class Verdict(enum.Enum):
    RETRY = "retry"  # another attempt after paho's backoff
    REFRESH = "refresh"  # another attempt, with fresh credentials
    GIVE_UP = "give_up"  # no more attempts: REFUSED


class AuthRetry:
    """Counts refusals in a row and decides what the next attempt does."""

    def __init__(self, max_retries: int = 3) -> None:
        self.max_retries = max_retries
        self.refusals = 0  # credential refusals since the last accepted connect
        self._refresh = False  # the next attempt asks for fresh credentials

    def take_refresh(self) -> bool:
        """For the attempt about to start: fresh credentials (True) or the cached ones."""
        refresh, self._refresh = self._refresh, False
        return refresh

    def fetch_failed(self, error: CoplayError, refresh: bool) -> Verdict:
        """The source raised ``error`` for an attempt that asked for ``refresh``."""
        if isinstance(error, AuthError):
            return Verdict.GIVE_UP
        self._refresh = refresh  # still due on the next attempt
        return Verdict.RETRY

    def refused(self, reason_code: int) -> Verdict:
        """The broker refused the CONNECT with ``reason_code``."""
        if reason_code not in AUTH_REFUSED_CODES:
            return Verdict.RETRY
        self.refusals += 1
        if self.refusals > self.max_retries:
            return Verdict.GIVE_UP
        self._refresh = True
        return Verdict.REFRESH

    def accepted(self) -> None:
        """The broker accepted a CONNECT: the count starts again."""
        self.refusals = 0

    def refused_for_good(self, username: str, reason: str) -> AuthError:
        """The error a link that gave up after refusals ends with (no credential in it)."""
        return AuthError(
            f"the broker refused the credentials of user {username!r} "
            f"({reason}), also after {self.max_retries} fresh ones"
        )
