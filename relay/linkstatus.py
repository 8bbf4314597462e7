"""What callers see of a link: its states, its status, its messages, and the
:class:`LinkLike` protocol that :class:`relay.link.Link` and the test doubles satisfy.

States: STARTING (until the first connect) -> CONNECTED <-> RECONNECTING; REFUSED
and STOPPED are final.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.errors import CoplayError


class LinkState(enum.StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    REFUSED = "refused"  # credentials refused for good; see Link.failure
    STOPPED = "stopped"

    @property
    def final(self) -> bool:
        """REFUSED and STOPPED: the link will not connect again."""
        return self in (LinkState.REFUSED, LinkState.STOPPED)


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


class LinkLike(Protocol):
    """What the host daemon and the guest loop need of :class:`relay.link.Link`."""

    def start(self) -> None: ...

    @property
    def status(self) -> LinkStatus: ...

    @property
    def failure(self) -> CoplayError | None: ...

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool: ...

    def stop(self, final: Sequence[Message] = (), timeout: float = 2.0) -> None: ...
