"""Join links for browser tests: create one for a user, open it in a tab.

Until the relay's invite endpoints exist this stands in for a redeemed link:
``create`` makes a random code and ``open`` stores, under that code, the grant
the redeem endpoint would have returned (the relay's own app credentials) in
the page's localStorage, where the page keeps redeemed grants, before opening
the link.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from tests.support.browser import Browser, Tab
from tests.support.relay_service import RelayService
from tests.support.stack import Stack


class JoinLinks:
    def __init__(self, relay: RelayService, stack: Stack, session: str) -> None:
        self.relay = relay
        self.stack = stack
        self.session = session
        self._grants: dict[str, dict[str, Any]] = {}

    def create(self, user: str, seat: int | None = None) -> str:
        code = secrets.token_urlsafe(22)
        self.stack.ledger.secret("invite code", code)
        self._grants[code] = {
            "appClientId": self.relay.client_id,
            "appClientSecret": self.relay.client_secret,
            "app_id": self.relay.app_id,
            "username": user,
            "session": self.session,
            "seat": seat,
            "topic_prefix": self.relay.topic_prefix,
            "api_url": self.relay.api_url,
            "broker_url": self.relay.broker_url,
            "ws_url": self.relay.ws_url + "/mqtt",
            "expires_in": 3600,
        }
        return f"{self.relay.api_url}/join#{code}"

    def open(self, browser: Browser, link: str) -> Tab:
        base, _, code = link.partition("#")
        grant = self._grants.get(code)
        if grant is None:
            return browser.tab(link)
        tab = browser.tab(base)
        key = "coplay.grant." + hashlib.sha256(code.encode()).hexdigest()[:32]
        kept = json.dumps({"grant": grant, "until": (time.time() + 3600) * 1000})
        tab.js("localStorage.setItem(arguments[0], arguments[1])", key, kept)
        tab.js("location.replace(arguments[0])", link)
        return tab
