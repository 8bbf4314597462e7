"""Invites over real HTTP: who may create them, what a redeem gives, what a friend's credential
may do, and how grants end (the API in-process, with a clock the test moves)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relay.invites import REDEEM_PATH
from relay.service.invite_store import InviteStore
from relay.topics import Acl, acl
from tests.support.invite_api import (
    BROKER_URL,
    GUEST_TOKEN_S,
    PUBLIC_URL,
    WS_URL,
    InviteApi,
)

INVITE = "/openapi/rm/invite"
REVOKE = "/openapi/rm/invite/revoke"
LIST = "/openapi/rm/invite/list"


def fail_text(reply: Any, status: int) -> str:
    body = reply.json()
    assert (reply.status_code, body["code"], body["msg"]) == (status, status, "fail"), reply.text
    assert isinstance(body["body"], str) and body["body"]
    return str(body["body"])


def friend(api: InviteApi, code: str) -> dict[str, Any]:
    reply = api.redeem(code)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()["body"]
    return body


def friend_app_token(api: InviteApi, redeemed: dict[str, Any]) -> str:
    return api.token_of(api.app_token(redeemed["appClientId"], redeemed["appClientSecret"]))


# ---------------------------------------------------------------- creating


def test_only_a_host_token_creates_invites(invite_api: InviteApi) -> None:
    """No token or a bad one: 401; an app token: 401; a guest's token: 403; the host's: 200."""
    api = invite_api
    body = {"session": "s1", "username": "alice"}
    fail_text(api.post(INVITE, body), 401)
    fail_text(api.post(INVITE, body, token="not-a-token"), 401)
    main = api.main
    fail_text(
        api.post(INVITE, body, token=api.token_of(api.app_token(main.client_id, main.secret))), 401
    )
    hosted = api.apps["hosted-app"]  # its own credentials mint guest tokens
    hosted_app = api.token_of(api.app_token(hosted.client_id, hosted.secret))
    guest = api.token_of(api.user_token(hosted_app, "mallory", "m1@hosted"))
    assert "host" in fail_text(api.post(INVITE, body, token=guest), 403)
    redeemed = friend(api, api.invite("bob"))
    friend_token = api.token_of(api.user_token(friend_app_token(api, redeemed), "bob", "b1@coplay"))
    fail_text(api.post(INVITE, {"session": "s1", "username": "carol"}, token=friend_token), 403)
    assert api.post(INVITE, body, token=api.host_token()).status_code == 200


def test_invite_answer_is_a_join_link_with_a_long_code(invite_api: InviteApi) -> None:
    reply = invite_api.post(
        INVITE,
        {"session": "s1", "username": "alice", "seat": 3, "ttl_s": 7200, "uses": 2},
        token=invite_api.host_token(),
    )
    body = reply.json()["body"]
    code = body["invite"]
    assert body["url"] == f"{PUBLIC_URL}/join#{code}"
    assert body["expires_in"] == 7200
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", code)  # >= 128 bits, url-safe
    assert code != invite_api.invite("alice")


def test_a_host_cannot_be_invited(invite_api: InviteApi) -> None:
    reply = invite_api.post(
        INVITE, {"session": "s1", "username": "streamer"}, token=invite_api.host_token()
    )
    assert "host" in fail_text(reply, 400)


def test_live_invites_per_app_are_bounded(invite_api: InviteApi) -> None:
    """The fixture's store allows 8 live grants per app: the 9th is 429, other apps unaffected."""
    token = invite_api.host_token()
    for i in range(8):
        assert (
            invite_api.post(INVITE, {"session": "s1", "username": f"u{i}"}, token=token).status_code
            == 200
        )
    fail_text(invite_api.post(INVITE, {"session": "s1", "username": "u8"}, token=token), 429)
    other = invite_api.host_token(invite_api.apps["other-app"])
    assert (
        invite_api.post(INVITE, {"session": "s1", "username": "u8"}, token=other).status_code == 200
    )
    invite_api.post(REVOKE, {"session": "s1", "username": "u0"}, token=token)
    assert (
        invite_api.post(INVITE, {"session": "s1", "username": "u8"}, token=token).status_code == 200
    )


# ---------------------------------------------------------------- redeeming


def test_redeem_gives_the_friends_own_credential_and_addresses(invite_api: InviteApi) -> None:
    code = invite_api.invite("alice", "friday", seat=2, ttl_s=3600)
    invite_api.advance(100)
    body = friend(invite_api, code)
    assert body["appClientId"] not in invite_api.apps
    assert body["appClientSecret"] not in {a.secret for a in invite_api.apps.values()}
    assert len(body["appClientSecret"]) >= 32
    assert {k: v for k, v in body.items() if not k.startswith("appClient")} == {
        "app_id": "coplay",
        "username": "alice",
        "session": "friday",
        "seat": 2,
        "topic_prefix": "coplay",
        "api_url": PUBLIC_URL,
        "broker_url": BROKER_URL,
        "ws_url": WS_URL,
        "expires_in": 3500,
    }


def test_a_single_use_link_redeemed_twice_is_401(invite_api: InviteApi) -> None:
    code = invite_api.invite("alice")
    assert invite_api.redeem(code).status_code == 200
    fail_text(invite_api.redeem(code), 401)


def test_a_link_with_two_uses_makes_two_credentials_then_stops(invite_api: InviteApi) -> None:
    code = invite_api.invite("alice", uses=2)
    first, second = friend(invite_api, code), friend(invite_api, code)
    assert first["appClientId"] != second["appClientId"]
    fail_text(invite_api.redeem(code), 401)
    for redeemed in (first, second):
        friend_app_token(invite_api, redeemed)  # both work


def test_an_expired_link_is_401(invite_api: InviteApi) -> None:
    code = invite_api.invite("alice", ttl_s=600)
    invite_api.advance(601)
    fail_text(invite_api.redeem(code), 401)


def test_unknown_used_expired_and_revoked_codes_get_the_same_answer(invite_api: InviteApi) -> None:
    """No oracle: the status, headers that matter and body are identical for all four."""
    api = invite_api
    used = api.invite("alice")
    friend(api, used)
    expired = api.invite("bob", ttl_s=60)
    revoked = api.invite("carol")
    api.post(REVOKE, {"session": "s1", "username": "carol"}, token=api.host_token())
    api.advance(61)
    unknown = "A" * 32
    replies = [api.redeem(code) for code in (unknown, used, expired, revoked)]
    assert {r.status_code for r in replies} == {401}
    assert len({r.content for r in replies}) == 1, [r.text for r in replies]


def test_a_malformed_code_is_400_not_a_crash(invite_api: InviteApi) -> None:
    for bad in (
        {"invite": "short"},
        {"invite": "x" * 500},
        {"invite": 5},
        {},
        {"invite": "a/b" * 10},
    ):
        fail_text(invite_api.post(REDEEM_PATH, bad), 400)


# ---------------------------------------------------------------- the friend's credential


def test_friend_gets_a_guest_token_for_its_user_and_session_only(invite_api: InviteApi) -> None:
    api = invite_api
    redeemed = friend(api, api.invite("alice", "friday"))
    app_token = friend_app_token(api, redeemed)
    token = api.token_of(api.user_token(app_token, "alice", "d1@coplay"))
    claims = api.claims(token)
    assert claims["sub"] == "alice"
    assert claims["role"] == "guest"
    assert claims["session"] == "friday"
    assert isinstance(claims["grant"], int)
    assert claims["acl"] == {
        "pub": ["coplay/friday/in/alice"],
        "sub": ["coplay/friday/out/alice", "coplay/friday/host"],
    }
    assert Acl(tuple(claims["acl"]["pub"]), tuple(claims["acl"]["sub"])) == acl(
        "guest", "alice", "coplay", "friday"
    )


def test_friend_credential_refuses_other_usernames_with_403(invite_api: InviteApi) -> None:
    api = invite_api
    app_token = friend_app_token(api, friend(api, api.invite("alice")))
    assert "alice" in fail_text(api.user_token(app_token, "bob", "d1@coplay"), 403)
    fail_text(api.user_token(app_token, "streamer", "d1@coplay"), 403)
    fail_text(api.user_token(app_token, "alice", "d1@other"), 400)  # another app's client id


def test_guest_token_lives_at_most_guest_token_s_and_never_past_the_grant(
    invite_api: InviteApi,
) -> None:
    api = invite_api
    redeemed = friend(api, api.invite("alice", ttl_s=3600))
    reply = api.user_token(friend_app_token(api, redeemed), "alice", "d1@coplay", expires_in=86400)
    assert reply.json()["body"]["expires_in"] == GUEST_TOKEN_S
    claims = api.claims(api.token_of(reply))
    assert claims["exp"] - claims["iat"] == GUEST_TOKEN_S
    api.advance(3600 - 100)  # 100 s left in the grant
    reply = api.user_token(friend_app_token(api, redeemed), "alice", "d1@coplay", expires_in=600)
    assert reply.json()["body"]["expires_in"] == 100
    claims = api.claims(api.token_of(reply))
    assert claims["exp"] == int(api.clock.now) + 100


def test_app_credentials_asked_for_a_guest_get_403_pointing_at_a_join_link(
    invite_api: InviteApi,
) -> None:
    api = invite_api
    main = api.main
    app_token = api.token_of(api.app_token(main.client_id, main.secret))
    text = fail_text(api.user_token(app_token, "alice", "d1@coplay"), 403)
    assert "join link" in text
    host = api.claims(api.token_of(api.user_token(app_token, "streamer", "h1@coplay")))
    assert host["role"] == "host"
    assert host["acl"] == acl("host", "streamer", "coplay").as_claim()


def test_guest_tokens_app_keeps_the_plain_app_credential_flow(invite_api: InviteApi) -> None:
    hosted = invite_api.apps["hosted-app"]
    app_token = invite_api.token_of(invite_api.app_token(hosted.client_id, hosted.secret))
    claims = invite_api.claims(
        invite_api.token_of(invite_api.user_token(app_token, "alice", "d1@hosted"))
    )
    assert claims["role"] == "guest"
    assert claims["acl"] == acl("guest", "alice", "hosted").as_claim()  # its own prefix


def test_each_apps_tokens_carry_its_own_prefix(invite_api: InviteApi) -> None:
    """A second app's host and friends get acl rules under its prefix only."""
    api = invite_api
    other = api.apps["other-app"]
    host = api.claims(api.host_token(other))
    assert host["acl"] == acl("host", "boss", "other").as_claim()
    code = api.post(INVITE, {"session": "s1", "username": "alice"}, token=api.host_token(other))
    redeemed = friend(api, code.json()["body"]["invite"])
    assert (redeemed["app_id"], redeemed["topic_prefix"]) == ("other", "other")
    token = api.token_of(api.user_token(friend_app_token(api, redeemed), "alice", "d1@other"))
    assert api.claims(token)["acl"] == acl("guest", "alice", "other", "s1").as_claim()


# ---------------------------------------------------------------- ending


def test_revoke_ends_the_credential_and_its_app_tokens(invite_api: InviteApi) -> None:
    api = invite_api
    redeemed = friend(api, api.invite("alice"))
    app_token = friend_app_token(api, redeemed)
    bob = friend(api, api.invite("bob"))
    reply = api.post(REVOKE, {"session": "s1", "username": "alice"}, token=api.host_token())
    assert reply.json()["body"] == {"revoked": 1}
    assert len(api.revoked_calls) == 1 and len(api.revoked_calls[0]) == 1
    text = fail_text(api.app_token(redeemed["appClientId"], redeemed["appClientSecret"]), 401)
    assert "revoked" in text and "join link" in text
    fail_text(api.user_token(app_token, "alice", "d1@coplay"), 401)
    friend_app_token(api, bob)  # bob plays on
    again = api.post(REVOKE, {"session": "s1", "username": "alice"}, token=api.host_token())
    assert again.json()["body"] == {"revoked": 0}


def test_revoke_needs_a_host_token_of_the_same_app(invite_api: InviteApi) -> None:
    api = invite_api
    redeemed = friend(api, api.invite("alice"))
    body = {"session": "s1", "username": "alice"}
    fail_text(api.post(REVOKE, body), 401)
    other = api.post(REVOKE, body, token=api.host_token(api.apps["other-app"]))
    assert other.json()["body"] == {"revoked": 0}
    friend_app_token(api, redeemed)  # still works


def test_a_grant_past_its_expiry_refuses_the_credential(invite_api: InviteApi) -> None:
    api = invite_api
    redeemed = friend(api, api.invite("alice", ttl_s=600))
    app_token = friend_app_token(api, redeemed)
    api.advance(601)
    text = fail_text(api.app_token(redeemed["appClientId"], redeemed["appClientSecret"]), 401)
    assert "expired" in text
    fail_text(api.user_token(app_token, "alice", "d1@coplay"), 401)


def test_a_wrong_friend_secret_is_401(invite_api: InviteApi) -> None:
    redeemed = friend(invite_api, invite_api.invite("alice"))
    reply = invite_api.app_token(redeemed["appClientId"], "x" * 43)
    assert fail_text(reply, 401) == "invalid app credentials"


def test_list_shows_live_grants_without_codes_or_secrets(invite_api: InviteApi) -> None:
    api = invite_api
    token = api.host_token()
    alice = api.invite("alice", seat=2, uses=3, ttl_s=7200)
    redeemed = friend(api, alice)
    api.invite("bob", ttl_s=3600)
    api.invite("carol", session="s2")
    api.invite("dave")
    api.post(REVOKE, {"session": "s1", "username": "dave"}, token=token)
    api.advance(10)
    reply = api.post(LIST, {"session": "s1"}, token=token)
    assert reply.json()["body"]["invites"] == [
        {
            "username": "bob",
            "session": "s1",
            "seat": None,
            "uses_left": 1,
            "redeemed": 0,
            "expires_in": 3590,
        },
        {
            "username": "alice",
            "session": "s1",
            "seat": 2,
            "uses_left": 2,
            "redeemed": 1,
            "expires_in": 7190,
        },
    ]
    assert alice not in reply.text and redeemed["appClientSecret"] not in reply.text
    assert len(api.post(LIST, {}, token=token).json()["body"]["invites"]) == 3
    fail_text(api.post(LIST, {}), 401)


def test_grants_and_revocations_outlive_the_store(invite_api: InviteApi) -> None:
    """A new store on the same file (a relay restart) knows every grant and revocation."""
    api = invite_api
    alice = friend(api, api.invite("alice"))
    bob = friend(api, api.invite("bob"))
    api.post(REVOKE, {"session": "s1", "username": "bob"}, token=api.host_token())
    reopened = InviteStore(api.store_path, clock=api.clock)
    try:
        alice_grant = reopened.credential(alice["appClientId"], alice["appClientSecret"])
        bob_grant = reopened.credential(bob["appClientId"], bob["appClientSecret"])
        assert alice_grant is not None and alice_grant.live(api.clock.now)
        assert bob_grant is not None and not bob_grant.live(api.clock.now)
    finally:
        reopened.close()


def test_no_code_or_secret_is_ever_handed_to_the_logger(invite_api: InviteApi) -> None:
    api = invite_api
    code = api.invite("alice", uses=2)
    redeemed = friend(api, code)
    app_token = friend_app_token(api, redeemed)
    user = api.token_of(api.user_token(app_token, "alice", "d1@coplay"))
    api.redeem("B" * 32)
    api.post(REVOKE, {"session": "s1", "username": "alice"}, token=api.host_token())
    text = api.recorder.text()
    assert "invite_created" in text and "invite_redeemed" in text and "invite_revoked" in text
    for value in (code, redeemed["appClientSecret"], app_token, user):
        assert value not in text


@pytest.mark.parametrize("ttl", [59, 30 * 86400 + 1])
def test_invite_lifetime_is_bounded(invite_api: InviteApi, ttl: int) -> None:
    reply = invite_api.post(
        INVITE, {"session": "s1", "username": "alice", "ttl_s": ttl}, token=invite_api.host_token()
    )
    fail_text(reply, 400)
