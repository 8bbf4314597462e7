"""schemathesis against the live token API: no 5xx, and every answer matches the OpenAPI.

The schema is generated in-process from the same Litestar app factory (so the
tests can be collected before any server runs; schemathesis's lazy
``from_fixture`` loader does not work with pytest 9), and a separate test
checks that the live ``/schema/openapi.json`` is that very document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import structlog
from hypothesis import HealthCheck, settings

from relay.clock import SystemClock
from relay.secrets import Secret
from relay.service.api import create_app
from relay.service.claims import TokenIssuer
from relay.service.config import AppCredentials
from relay.service.invite_store import InviteStore
from relay.service.invites import InviteService, invite_routes
from relay.service.ratelimit import RateLimiter
from relay.service.token_service import TokenService
from tests.support.relay_service import RelayService, running_relay


def _openapi_document() -> dict[str, Any]:
    app = AppCredentials("coplay", "streamer-app", Secret("unused-secret"), frozenset())
    issuer = TokenIssuer(Secret("s" * 48), clock=SystemClock())
    log = structlog.get_logger("test")
    store = InviteStore(":memory:", clock=SystemClock())
    invites = InviteService(
        (app,), issuer, store, public_url="http://x", broker_url="", ws_url="", log=log
    )
    litestar_app = create_app(
        TokenService((app,), issuer, 3600, log, invites=store),
        RateLimiter(60),
        log,
        extra_routes=lambda strict: invite_routes(invites, strict),
    )
    document = litestar_app.openapi_schema.to_schema()
    store.close()
    return document


DOCUMENT = _openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayService]:
    workdir: Path = tmp_path_factory.mktemp("relay")
    with running_relay(workdir, ws=False, rate_limit_per_min=100_000) as service:
        yield service


def test_the_live_service_serves_this_openapi_document(relay: RelayService) -> None:
    assert httpx.get(relay.api_url + "/schema/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_token_api_conforms_to_its_openapi(case: schemathesis.Case, relay: RelayService) -> None:
    case.call_and_validate(base_url=relay.api_url, timeout=10)


invite_operations = schema.include(path_regex="^/openapi/rm/invite")


@invite_operations.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_invite_endpoints_with_a_real_host_token_conform(
    case: schemathesis.Case, relay: RelayService, host_token: str
) -> None:
    """Past the token check: the bodies a host may send never give a 5xx."""
    case.call_and_validate(
        base_url=relay.api_url, timeout=10, headers={"Authorization": host_token}
    )


@pytest.fixture(scope="module")
def host_token(relay: RelayService) -> str:
    return relay.host_token()
