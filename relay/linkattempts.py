"""Each connect attempt of a link: which broker, which credentials, and what a refusal means.

paho calls ``on_pre_connect`` before every (re)connect, on its network thread,
with no connection open. :meth:`Attempts.prepare` then points the client at the
next broker URL (:class:`~relay.brokeraddress.BrokerRing`), gets credentials through a
:class:`~relay.credentialfetch.CredentialFetcher` (the cached ones, or fresh
ones after a refusal) and sets them on the client. When the broker refuses the
CONNECT, :meth:`Attempts.refused` applies the
:class:`~relay.authretry.AuthRetry` policy: another attempt (with fresh
credentials when the password was refused), or REFUSED for good.

Everything here runs on paho's network thread, except :meth:`Attempts.stop`.
"""

from __future__ import annotations

import threading
from typing import Any

from paho.mqtt.reasoncodes import ReasonCode

from relay.authretry import AuthRetry, Verdict
from relay.brokeraddress import BrokerRing, point_at
from relay.config import LinkSettings
from relay.credentialfetch import CredentialFetcher
from relay.errors import CoplayError
from relay.linkstatus import StatusBoard
from relay.logs import Throttle
from relay.mqttclient import DirectWriteClient
from relay.tokens import CredentialSource


class AttemptSkipped(OSError):
    """Raised from ``on_pre_connect`` to make paho count this attempt as failed.

    paho 2.x calls ``on_pre_connect`` inside ``reconnect()`` and offers no way to
    skip the attempt from there (its return value is ignored). Its network loop
    (``loop_forever``, run by ``loop_start``) treats an OSError from ``reconnect()``
    as a failed connect: it calls ``on_connect_fail`` and waits its reconnect
    backoff before the next try, exactly as for an unreachable broker; any other
    exception would end the network thread. So when there are no credentials
    (token API down, link stopping, app credentials refused) this OSError is the
    one signal paho understands. Paired with ``client.disconnect()`` first, it
    ends the loop instead of retrying.
    """


class Attempts:
    """The per-attempt steps of one link; reports to the link's :class:`StatusBoard`."""

    def __init__(
        self,
        settings: LinkSettings,
        source: CredentialSource,
        board: StatusBoard,
        stopping: threading.Event,  # set by the link's stop()
        log: Any,
        max_auth_retries: int,
    ) -> None:
        self._settings = settings
        self._board = board
        self._stopping = stopping
        self._log = log
        self.ring = BrokerRing(settings)
        self._auth = AuthRetry(max_auth_retries)
        self._fetcher = CredentialFetcher(source)
        self._throttle = Throttle(10.0)
        self.fetch_failed = False  # this attempt had no credentials (prepare said why)

    def prepare(self, client: DirectWriteClient) -> None:
        """Broker and credentials for the attempt about to start; AttemptSkipped if none."""
        try:
            self._prepare(client)
        except AttemptSkipped:
            raise
        except Exception as exc:  # a bug of ours: skip this attempt, paho tries again later
            self._board.callback_failed("link_on_pre_connect")
            self._board.lost("internal error; see the log")
            raise AttemptSkipped("internal error") from exc

    def accepted(self) -> None:
        """The broker accepted the CONNECT."""
        self._auth.accepted()

    def refused(self, client: DirectWriteClient, reason: ReasonCode) -> None:
        """The broker refused the CONNECT: try again (fresh credentials if need be) or give up."""
        text = str(reason).lower()
        match self._auth.refused(reason.value):
            case Verdict.RETRY:
                self._board.lost(f"refused: {text}")
            case Verdict.REFRESH:
                self._log.warning("credentials_refused", reason=text, refusals=self._auth.refusals)
                self._board.lost(f"{text}; fetching new credentials")
            case Verdict.GIVE_UP:
                self._give_up(self._auth.refused_for_good(self._settings.username, text))
                client.disconnect()

    def stop(self) -> None:
        """From any thread: an attempt waiting for credentials gives up now."""
        self._fetcher.stop()

    def _prepare(self, client: DirectWriteClient) -> None:
        if self._stopping.is_set():
            client.disconnect()
            raise AttemptSkipped("stopping")
        refresh = self._auth.take_refresh()
        self.fetch_failed = False
        self._board.attempt()
        address = self.ring.advance()
        if address is not None:
            point_at(client, address)
            self._log.info("broker_switched", broker=str(address))
        try:
            creds = self._fetcher.fetch(refresh)
        except CoplayError as exc:
            self.fetch_failed = True
            if self._auth.fetch_failed(exc, refresh) is Verdict.GIVE_UP:
                self._give_up(exc)
                client.disconnect()  # no socket yet: paho's loop ends instead of retrying
            elif self._stopping.is_set():
                client.disconnect()
            else:
                self._board.lost(f"credentials unavailable: {exc}")
            raise AttemptSkipped(str(exc)) from exc
        if creds.client_id != self._settings.client_id and self._throttle.allow("client_id"):
            self._log.warning("client_id_mismatch", wanted=creds.client_id)
        password = creds.password.reveal() if creds.password is not None else None
        client.username_pw_set(creds.username, password)

    def _give_up(self, error: CoplayError) -> None:
        self._board.give_up(error)
        self._log.error("link_refused", reason=str(error))
