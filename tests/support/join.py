"""Join links for browser tests: the streamer creates one (a real invite), a tab opens it."""

from __future__ import annotations

from typing import Any

from tests.support.browser import Browser, Tab
from tests.support.relay_service import RelayService
from tests.support.stack import Stack


class JoinLinks:
    def __init__(self, relay: RelayService, stack: Stack, session: str) -> None:
        self.relay = relay
        self.stack = stack
        self.session = session

    def create(self, user: str, **fields: Any) -> str:
        """A join link for ``user`` (``seat=``, ``ttl_s=``, ``uses=`` as the invite API takes)."""
        body = self.relay.invite(user, self.session, **fields)
        self.stack.ledger.secret("invite code", body["invite"])
        return str(body["url"])

    def revoke(self, user: str) -> None:
        reply = self.relay.revoke(user, self.session)
        assert reply.status_code == 200, reply.text

    def open(self, browser: Browser, link: str) -> Tab:
        return browser.tab(link)
