"""The token API of a real ``coplay-relay serve``, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from relay.topics import acl
from tests.support.relay_service import RelayService, running_relay

APP = "/openapi/rm/app/token"
USER = "/openapi/rm/user/token"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayService]:
    """One relay for this module, with max_token_s = 7200 to test the cap."""
    with running_relay(tmp_path_factory.mktemp("relay"), max_token_s=7200) as service:
        yield service


def is_fail(reply: httpx.Response, status: int) -> bool:
    body = reply.json()
    return (
        reply.status_code == status
        and body["code"] == status
        and body["msg"] == "fail"
        and isinstance(body["body"], str)
        and body["body"] != ""
    )


def user_token_reply(relay: RelayService, payload: Any, token: str | None = None) -> httpx.Response:
    return relay.post(USER, payload, headers={"Authorization": token or relay.app_token()})


def decode(relay: RelayService, token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, relay.jwt_secret, algorithms=["HS256"])
    return claims


def test_app_then_user_token_happy_path(relay: RelayService) -> None:
    app = relay.post(APP, {"appClientId": relay.client_id, "appClientSecret": relay.client_secret})
    assert app.status_code == 200
    body = app.json()
    assert (body["code"], body["msg"]) == (200, "success")
    assert body["body"]["expires_in"] > 0
    reply = user_token_reply(
        relay,
        {"username": "alice", "expires_in": 600, "cid": relay.cid("dev1")},
        token=body["body"]["access_token"],
    )
    assert reply.status_code == 200
    envelope = reply.json()
    assert (envelope["code"], envelope["msg"], envelope["body"]["expires_in"]) == (
        200,
        "success",
        600,
    )
    claims = decode(relay, envelope["body"]["access_token"])
    assert claims["sub"] == "alice"
    assert claims["cid"] == "dev1@coplay"
    assert claims["role"] == "guest"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["acl"] == acl("guest", "alice", "coplay").as_claim()


def test_usernames_listed_as_hosts_get_the_host_role(relay: RelayService) -> None:
    claims = decode(relay, relay.user_token("streamer", "h1"))
    assert claims["role"] == "host"
    assert claims["acl"] == acl("host", "streamer", "coplay").as_claim()


def test_wrong_app_secret_is_401_envelope(relay: RelayService) -> None:
    reply = relay.post(APP, {"appClientId": relay.client_id, "appClientSecret": "wrong"})
    assert is_fail(reply, 401)


def test_unknown_app_client_id_is_401_envelope(relay: RelayService) -> None:
    reply = relay.post(APP, {"appClientId": "nobody", "appClientSecret": relay.client_secret})
    assert is_fail(reply, 401)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"", b"[]", b'{"appClientId": 1, "appClientSecret": "x"}', b'{"appClientId": "x"}'],
)
def test_malformed_app_request_is_400_envelope(relay: RelayService, raw: bytes) -> None:
    reply = httpx.post(
        relay.api_url + APP, content=raw, headers={"Content-Type": "application/json"}
    )
    assert is_fail(reply, 400)


@pytest.mark.parametrize("username", ["al/ice", "a+", "#", "", "x" * 65, "alice\n", "bö"])
def test_bad_username_is_400(relay: RelayService, username: str) -> None:
    reply = user_token_reply(relay, {"username": username, "cid": relay.cid()})
    assert is_fail(reply, 400)


@pytest.mark.parametrize(
    "cid", ["dev1", "dev1@other-app", "de/v@coplay", "+@coplay", "dev1@coplay@x", "@coplay", ""]
)
def test_bad_cid_is_400(relay: RelayService, cid: str) -> None:
    reply = user_token_reply(relay, {"username": "alice", "cid": cid})
    assert is_fail(reply, 400)


def test_user_token_needs_a_valid_app_token(relay: RelayService) -> None:
    payload = {"username": "alice", "cid": relay.cid()}
    assert is_fail(relay.post(USER, payload), 401)
    assert is_fail(relay.post(USER, payload, headers={"Authorization": "garbage"}), 401)
    user = relay.user_token("alice")
    assert is_fail(relay.post(USER, payload, headers={"Authorization": user}), 401)
    bearer = "Bearer " + relay.app_token()
    assert is_fail(relay.post(USER, payload, headers={"Authorization": bearer}), 401)


@pytest.mark.parametrize(
    ("asked", "granted"), [(10**6, 7200), (7200, 7200), (5, 60), (None, 7200), (600.0, 600)]
)
def test_expires_in_is_capped(relay: RelayService, asked: float | None, granted: int) -> None:
    payload: dict[str, Any] = {"username": "alice", "cid": relay.cid()}
    if asked is not None:
        payload["expires_in"] = asked
    reply = user_token_reply(relay, payload)
    assert reply.status_code == 200
    assert reply.json()["body"]["expires_in"] == granted
    claims = decode(relay, reply.json()["body"]["access_token"])
    assert claims["exp"] - claims["iat"] == granted


@pytest.mark.parametrize("asked", [0, -1, 2**40, "60", 1.5])
def test_nonsense_expires_in_is_400(relay: RelayService, asked: object) -> None:
    reply = user_token_reply(relay, {"username": "alice", "cid": relay.cid(), "expires_in": asked})
    assert is_fail(reply, 400)


def test_extra_fields_are_tolerated(relay: RelayService) -> None:
    reply = user_token_reply(
        relay, {"username": "alice", "cid": relay.cid(), "expires_in": 600, "extra": [1, 2]}
    )
    assert reply.status_code == 200


def test_unknown_path_and_method_use_the_envelope(relay: RelayService) -> None:
    assert is_fail(httpx.get(relay.api_url + "/nope"), 404)
    reply = httpx.get(relay.api_url + APP)
    assert is_fail(reply, 405)
    assert "POST" in reply.headers["allow"]


def test_healthz_and_openapi(relay: RelayService) -> None:
    assert httpx.get(relay.api_url + "/healthz").json() == {"status": "ok"}
    schema = httpx.get(relay.api_url + "/schema/openapi.json").json()
    assert {APP, USER, "/healthz"} <= set(schema["paths"])


def test_no_secret_or_token_reaches_the_log(relay: RelayService) -> None:
    token = relay.user_token("alice", "leak")
    relay.post(APP, {"appClientId": relay.client_id, "appClientSecret": relay.client_secret + "x"})
    log = relay.log_text()
    assert "user_token_issued" in log
    for secret in (relay.client_secret, relay.jwt_secret, token, token.split(".")[2]):
        assert secret not in log


def test_rate_limit_answers_429_with_retry_after(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    relay = relay_service_factory(rate_limit_per_min=3, ws=False)
    payload = {"appClientId": relay.client_id, "appClientSecret": "wrong"}
    statuses = [relay.post(APP, payload).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    reply = relay.post(APP, payload)
    assert is_fail(reply, 429)
    assert int(reply.headers["retry-after"]) >= 1
    assert httpx.get(relay.api_url + "/healthz").status_code == 200  # health is never limited
