"""TokenService without HTTP: the lifetimes it issues, on a clock the test moves."""

from __future__ import annotations

import pytest
import structlog

from relay.secrets import Secret
from relay.service.claims import InvalidToken, TokenIssuer
from relay.service.config import AppCredentials
from relay.service.token_service import TokenService
from relay.tokenwire import UserTokenRequest

APP = AppCredentials("coplay", "streamer-app", Secret("app-secret"), frozenset({"streamer"}))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now


def _service(clock: FakeClock, max_token_s: int, **fields: int) -> tuple[TokenService, TokenIssuer]:
    issuer = TokenIssuer(Secret("k" * 48), clock=clock)
    log = structlog.get_logger("test")
    return TokenService((APP,), issuer, max_token_s, log, **fields), issuer


def _user_token(service: TokenService, expires_in: int) -> tuple[str, int]:
    app_token = service.app_token("streamer-app", "app-secret").token
    issued = service.user_token(app_token, UserTokenRequest("streamer", "d1@coplay", expires_in))
    return issued.token, issued.expires_in


def test_short_tokens_expire_on_the_clock_without_waiting() -> None:
    """min_token_s = max_token_s = 5: a client asking 60 s gets a 5 s token, dead 5 s later."""
    clock = FakeClock()
    service, issuer = _service(clock, max_token_s=5, min_token_s=5)
    token, expires_in = _user_token(service, expires_in=60)
    assert expires_in == 5
    clock.now += 4
    assert issuer.verify_user(token).sub == "streamer"
    clock.now += 1
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify_user(token)


def test_the_default_shortest_token_is_a_minute() -> None:
    service, _ = _service(FakeClock(), max_token_s=3600)
    assert _user_token(service, expires_in=10)[1] == 60
    service, _ = _service(FakeClock(), max_token_s=3600, min_token_s=5)
    assert _user_token(service, expires_in=10)[1] == 10
