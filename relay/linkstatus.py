"""What callers see of a link: its states, its status, its messages, and the
:class:`LinkLike` protocol that :class:`relay.link.Link` and the test doubles satisfy.

States: STARTING (until the first connect) -> CONNECTED <-> RECONNECTING; REFUSED
and STOPPED are final.

A link keeps its status on a :class:`StatusBoard`: set from paho's network
thread, read and awaited from any thread. ``LinkStatus.callback_errors`` counts
the exceptions raised in callbacks on paho's thread (the owner's message
handler, ``on_connect`` and ``on_status``, and the link's own); the link
survives them, so a status line is where a user sees that something broke.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from relay.errors import CoplayError
from relay.logs import Throttle


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
    # Exceptions raised in callbacks on paho's thread since the link was made. Not part of
    # equality: a new error alone is not a new state, and on_status does not fire for it.
    callback_errors: int = dataclasses.field(default=0, compare=False)


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


class StatusBoard:
    """A link's status, failure and callback error count, with the lock that guards them.

    ``on_status`` runs on the thread that changed the state (paho's, or the one
    that calls ``stop``), outside the lock, once per change.
    """

    def __init__(self, on_status: Callable[[LinkStatus], None] | None, log: Any) -> None:
        self._on_status = on_status
        self._log = log
        self._cond = threading.Condition()  # guards every field below
        self._status = LinkStatus(LinkState.STARTING)
        self._failure: CoplayError | None = None
        self._attempts = 0  # connect attempts since the last successful connect
        self._ever_connected = False
        self._errors = 0
        self._throttle = Throttle(10.0)

    @property
    def status(self) -> LinkStatus:
        with self._cond:
            return self._current()

    @property
    def failure(self) -> CoplayError | None:
        with self._cond:
            return self._failure

    def wait(self, done: Callable[[LinkState], bool], timeout: float) -> LinkStatus:
        """Wait until ``done(state)`` (or ``timeout``); the status then."""
        with self._cond:
            self._cond.wait_for(lambda: done(self._status.state), timeout)
            return self._current()

    def attempt(self) -> None:
        """A connect attempt starts."""
        with self._cond:
            self._attempts += 1

    def connected(self) -> None:
        with self._cond:
            self._attempts = 0
            self._ever_connected = True
        self._set(LinkState.CONNECTED, "")

    def lost(self, reason: str) -> None:
        """Not connected, will try again: RECONNECTING, or STARTING before the first connect."""
        with self._cond:
            state = LinkState.RECONNECTING if self._ever_connected else LinkState.STARTING
        self._set(state, reason)

    def give_up(self, error: CoplayError) -> None:
        with self._cond:
            self._failure = error
        self._set(LinkState.REFUSED, str(error))

    def stopped(self) -> None:
        self._set(LinkState.STOPPED, "stopped")

    def callback_failed(self, where: str, **fields: Any) -> None:
        """Count an exception raised in callback ``where``; log it (at most once per 10 s each).

        Call from the ``except`` block, so the log carries the traceback.
        """
        with self._cond:
            self._errors += 1
            count = self._errors
            loud = self._throttle.allow(where)
        if loud:
            self._log.exception(f"{where}_failed", callback_errors=count, **fields)

    def _current(self) -> LinkStatus:
        status = self._status
        if status.callback_errors == self._errors:
            return status
        return dataclasses.replace(status, callback_errors=self._errors)

    def _set(self, state: LinkState, reason: str) -> None:
        with self._cond:
            if self._status.state.final and state is not LinkState.STOPPED:
                return
            if self._status.state is LinkState.STOPPED:
                return
            status = LinkStatus(state, reason, self._attempts, self._errors)
            if status == self._status:
                return
            self._status = status
            self._cond.notify_all()
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:
                self.callback_failed("on_status")
