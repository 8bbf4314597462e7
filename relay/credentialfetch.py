"""Credentials for the next connect attempt, fetched on one worker thread the link can abandon.

A token fetch may take a minute (the token client retries a token API that is
down), and it runs while paho's network thread waits in ``on_pre_connect``. To
let :meth:`relay.link.Link.stop` end that wait at once, the fetch runs on a
worker thread and the network thread waits on a
:class:`~concurrent.futures.Future` that either the worker or :meth:`stop`
completes: no polling, and one worker per link for its whole life (started on
the first fetch), not a thread per attempt.

The worker is a daemon: a fetch still running when the program exits (its
HTTP request in flight) never holds the exit up. Closing the credential source
ends any wait between retries.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, InvalidStateError

from relay.errors import CoplayError
from relay.tokens import Credentials, CredentialSource


class LinkStopped(CoplayError):
    """The link was stopped while it waited for something."""


_Request = tuple[bool, "Future[Credentials]"]  # (refresh, where the answer goes)


class CredentialFetcher:
    """Runs ``source.get()`` or ``source.refresh()`` on one worker; the caller waits for it."""

    def __init__(self, source: CredentialSource, name: str = "link-credentials") -> None:
        self._source = source
        self._name = name
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the three fields below
        self._worker: threading.Thread | None = None
        self._waiting: Future[Credentials] | None = None
        self._stopped = False

    def fetch(self, refresh: bool) -> Credentials:
        """Fresh (``refresh``) or cached credentials; blocks until they come or :meth:`stop`.

        Raises what the source raised, or :class:`LinkStopped`.
        """
        answer: Future[Credentials] = Future()
        with self._lock:
            if self._stopped:
                raise LinkStopped("the link is stopping")
            self._waiting = answer
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._worker.start()
        self._requests.put((refresh, answer))
        try:
            return answer.result()
        finally:
            with self._lock:
                self._waiting = None

    def stop(self) -> None:
        """Release a caller that waits (LinkStopped) and let the worker end after its fetch."""
        with self._lock:
            self._stopped = True
            waiting = self._waiting
        if waiting is not None:
            _settle(waiting, LinkStopped("the link is stopping"))
        self._requests.put(None)

    def _work(self) -> None:
        while (request := self._requests.get()) is not None:
            refresh, answer = request
            if answer.done():
                continue  # released by stop() before its turn
            try:
                credentials = self._source.refresh() if refresh else self._source.get()
            except BaseException as exc:  # handed to the waiting caller, which raises it
                _settle(answer, exc)
            else:
                _settle(answer, credentials)


def _settle(answer: Future[Credentials], outcome: Credentials | BaseException) -> None:
    """Complete ``answer`` unless it already is (stop() and the worker may race)."""
    try:
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)
    except InvalidStateError:
        pass
