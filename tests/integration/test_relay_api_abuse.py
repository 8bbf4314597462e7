"""The token API under abuse, over real HTTP: forged forwarded headers and wrong-secret floods."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.support.relay_service import RelayService

APP = "/openapi/rm/app/token"
LIMIT = 5


def _post(relay: RelayService, secret: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    payload = {"appClientId": relay.client_id, "appClientSecret": secret}
    return relay.post(APP, payload, headers=headers).status_code


def test_a_rotating_x_forwarded_for_from_an_untrusted_peer_gains_nothing(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    relay = relay_service_factory(rate_limit_per_min=LIMIT, ws=False)
    statuses = [_post(relay, "wrong", forwarded=f"10.0.0.{i}") for i in range(LIMIT + 3)]
    assert statuses[:LIMIT] == [401] * LIMIT
    assert statuses[LIMIT:] == [429] * 3


def test_a_wrong_secret_flood_from_the_apps_own_address_does_not_lock_out_the_right_secret(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    relay = relay_service_factory(rate_limit_per_min=LIMIT, ws=False)
    flood = [_post(relay, "wrong") for _ in range(50)]
    assert flood.count(429) >= 50 - LIMIT  # the stranger is limited
    assert _post(relay, relay.client_secret) == 200  # the app is not
    token = relay.user_token("alice", "after-flood")  # nor its user tokens
    assert token.count(".") == 2
    assert [_post(relay, relay.client_secret) for _ in range(3 * LIMIT)] == [200] * (3 * LIMIT)


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    relay = relay_service_factory(
        rate_limit_per_min=LIMIT, ws=False, server_extra='trusted_proxies = ["127.0.0.1"]\n'
    )
    first = [_post(relay, "wrong", forwarded="198.51.100.7") for _ in range(LIMIT + 1)]
    assert first[-1] == 429
    assert _post(relay, "wrong", forwarded="198.51.100.8") == 401  # someone else behind it
    # a client cannot hide behind a forged hop: the right-most untrusted address counts
    assert _post(relay, "wrong", forwarded="203.0.113.1, 198.51.100.7") == 429
    assert httpx.get(relay.api_url + "/healthz").status_code == 200
