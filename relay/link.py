"""The MQTT link both host and guest use: connect with fresh credentials, stay connected.

INTERFACE FIXED — implementation pending (see issue 3). Host and guest code against
these names; the implementation may add to them but not change them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relay.config import LinkSettings
from relay.errors import CoplayError
from relay.tokens import CredentialSource


class LinkState(enum.StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    REFUSED = "refused"  # credentials refused for good; see Link.failure
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class LinkStatus:
    state: LinkState
    reason: str = ""  # human text: "connection refused", "not authorized", ...
    attempts: int = 0  # reconnect attempts since the last successful connect


@dataclass(frozen=True, slots=True)
class Message:
    """An outgoing message: for the Last Will and the final messages of ``stop``."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


# (topic, payload, retained) -> None. Runs on paho's network thread: must not block.
MessageHandler = Callable[[str, bytes, bool], None]


class Link:
    """One MQTT connection that reconnects by itself and restores its subscriptions."""

    def __init__(
        self,
        settings: LinkSettings,
        credentials: CredentialSource,
        *,
        on_message: MessageHandler,
        subscriptions: Sequence[tuple[str, int]] = (),
        will: Message | None = None,
        on_connect: Callable[[], None] | None = None,  # after subscriptions are restored
        on_status: Callable[[LinkStatus], None] | None = None,
        max_auth_retries: int = 3,
    ) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Connect in the background (connect_async + loop_start); returns at once."""
        raise NotImplementedError

    def wait_connected(self, timeout: float) -> bool:
        raise NotImplementedError

    @property
    def status(self) -> LinkStatus:
        raise NotImplementedError

    @property
    def failure(self) -> CoplayError | None:
        """Why the link gave up for good (AuthError -> exit 77), else None."""
        raise NotImplementedError

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Send from any thread. False (and nothing queued) while not connected."""
        raise NotImplementedError

    def stop(self, final: Sequence[Message] = (), timeout: float = 2.0) -> None:
        """Publish ``final`` (waiting for QoS 1 acks up to ``timeout``), then disconnect cleanly."""
        raise NotImplementedError
