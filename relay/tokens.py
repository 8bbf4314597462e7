"""Credentials for the broker: tokens from an Easemob-compatible token API, or a fixed password.

INTERFACE FIXED — implementation pending (see issue 3). Host and guest code against
these names; the implementation may add to them but not change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relay.config import LinkSettings
from relay.logs import Redactor
from relay.secrets import Secret


@dataclass(frozen=True, slots=True)
class Credentials:
    """What MQTT CONNECT needs."""

    client_id: str
    username: str
    password: Secret
    expires_at: float | None = None  # time.monotonic() when the password stops working


class CredentialSource(Protocol):
    """Where the link gets its CONNECT credentials."""

    def get(self) -> Credentials:
        """Cached credentials, fetched or refreshed (before expiry) as needed.

        Blocks while retrying network errors, 5xx and 429 with capped exponential
        backoff and jitter. Raises AuthError at once when the app credentials are
        refused (401): retrying those is pointless.
        """
        ...

    def refresh(self) -> Credentials:
        """Fetch new credentials now (the broker refused the current password)."""
        ...

    def close(self) -> None: ...


def credential_source(settings: LinkSettings, redactor: Redactor | None = None) -> CredentialSource:
    """A TokenClient when ``settings.api_url`` is set, else StaticCredentials."""
    raise NotImplementedError
