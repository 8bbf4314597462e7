"""The NATS auth callout's decisions, its JWTs, and the acl -> subject mapping (no server)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from relay.secrets import Secret
from relay.service.claims import TokenIssuer, UserClaims
from relay.service.config import load_relay_config
from relay.service.exports import emqx_config
from relay.service.invite_store import InviteStore
from relay.service.nats_callout import (
    REVOKED,
    CalloutAuthorizer,
    grant_admit,
    nats_subject,
    nats_subjects,
)
from relay.service.nats_jwt import (
    ACCOUNT,
    MAX_JWT_BYTES,
    SERVER,
    USER,
    NatsJwtError,
    NKey,
    callout_key,
    decode,
    encode,
    issuer_key,
)
from relay.topics import Acl, acl, topic_matches

SECRET = Secret("s" * 48)
NOW = 1_700_000_000.0


class FixedClock:
    def time(self) -> float:
        return NOW


FIXED = FixedClock()


@pytest.fixture
def tokens() -> TokenIssuer:
    return TokenIssuer(SECRET, prefix="coplay", clock=FIXED)


@pytest.fixture
def server() -> NKey:
    return NKey(os.urandom(32), SERVER)


@pytest.fixture
def authorizer(tokens: TokenIssuer) -> CalloutAuthorizer:
    return CalloutAuthorizer(tokens, issuer_key(SECRET), "COPLAY", clock=FIXED)


USER_NKEY = NKey(os.urandom(32), USER).public


def request(
    server: NKey,
    *,
    user: str = "alice",
    password: str = "",
    client_id: str = "d1@coplay",
    client_type: str = "mqtt",
    audience: str = "nats-authorization-request",
) -> str:
    return encode(
        {
            "sub": issuer_key(SECRET).public,
            "aud": audience,
            "nats": {
                "user_nkey": USER_NKEY,
                "server_id": {"id": server.public, "name": "n1"},
                "client_info": {"type": client_type, "mqtt_id": client_id, "kind": "Client"},
                "connect_opts": {"user": user, "pass": password},
                "type": "authorization_request",
                "version": 2,
            },
        },
        server,
        NOW,
    )


def token(
    tokens: TokenIssuer, user: str = "alice", role: Any = "guest", cid: str = "d1@coplay"
) -> str:
    return tokens.user_token(username=user, cid=cid, role=role, lifetime_s=600)


def response(verdict_response: str | None, server: NKey) -> dict[str, Any]:
    assert verdict_response is not None
    claims = decode(verdict_response, ACCOUNT)
    assert claims["iss"] == issuer_key(SECRET).public
    assert claims["sub"] == USER_NKEY and claims["aud"] == server.public
    assert claims["nats"]["type"] == "authorization_response"
    return dict(claims["nats"])


def test_valid_guest_token_gets_a_user_with_its_acl_as_subjects_and_its_expiry(
    authorizer: CalloutAuthorizer, tokens: TokenIssuer, server: NKey
) -> None:
    verdict = authorizer.answer(request(server, password=token(tokens)))
    assert verdict.refused == "" and verdict.user == "alice"
    body = response(verdict.response, server)
    assert "error" not in body
    user = decode(body["jwt"], ACCOUNT)
    assert user["iss"] == issuer_key(SECRET).public
    assert (user["sub"], user["name"], user["aud"]) == (USER_NKEY, "alice", "COPLAY")
    assert user["exp"] == int(NOW) + 600  # expires with the token
    perms = user["nats"]
    assert perms["pub"] == {"allow": ["coplay.*.in.alice"]}
    assert perms["sub"] == {"allow": ["coplay.*.out.alice", "coplay.*.host"]}
    assert perms["allowed_connection_types"] == ["MQTT"]
    assert perms["type"] == "user"


def test_host_token_gets_the_host_subjects(
    authorizer: CalloutAuthorizer, tokens: TokenIssuer, server: NKey
) -> None:
    password = token(tokens, "streamer", "host", "h@coplay")
    verdict = authorizer.answer(
        request(server, user="streamer", password=password, client_id="h@coplay")
    )
    perms = decode(response(verdict.response, server)["jwt"], ACCOUNT)["nats"]
    assert perms["pub"] == {"allow": ["coplay.*.out.*", "coplay.*.host"]}
    assert perms["sub"] == {"allow": ["coplay.*.in.*"]}


@pytest.mark.parametrize("client_type", ["nats", "websocket", "leafnode", ""])
def test_only_mqtt_clients_are_admitted(
    authorizer: CalloutAuthorizer, tokens: TokenIssuer, server: NKey, client_type: str
) -> None:
    verdict = authorizer.answer(request(server, password=token(tokens), client_type=client_type))
    assert verdict.refused == "only MQTT clients are admitted"
    body = response(verdict.response, server)
    assert body["error"] == verdict.refused and "jwt" not in body


def test_refusals_name_the_reason_and_never_the_token(
    authorizer: CalloutAuthorizer, tokens: TokenIssuer, server: NKey
) -> None:
    good = token(tokens)
    expired = tokens.sign_user_claims(
        {**tokens.user_claims(username="alice", cid="d1@coplay", role="guest", lifetime_s=60),
         "exp": int(NOW) - 1}
    )  # fmt: skip
    forged = TokenIssuer(Secret("x" * 48), clock=FIXED).user_token(
        username="alice", cid="d1@coplay", role="host", lifetime_s=600
    )
    cases = {
        "username does not match the token": request(server, user="bob", password=good),
        "client id does not match the token": request(server, password=good, client_id="d2@coplay"),
        "token expired": request(server, password=expired),
        "invalid token": request(server, password=forged),
        "invalid token ": request(server, password=tokens.app_token("streamer-app", 600)),
        "no username or password": request(server, password=""),
    }
    for reason, req in cases.items():
        verdict = authorizer.answer(req)
        assert verdict.refused.startswith(reason.strip()), (reason, verdict.refused)
        body = response(verdict.response, server)
        assert body == {"error": verdict.refused, "type": "authorization_response", "version": 2}
        assert good not in verdict.refused and "eyJ" not in verdict.refused


def test_admit_hook_can_refuse_a_valid_token(tokens: TokenIssuer, server: NKey) -> None:
    seen: list[UserClaims] = []

    def admit(claims: UserClaims) -> str:
        seen.append(claims)
        return "invite revoked"

    authorizer = CalloutAuthorizer(tokens, issuer_key(SECRET), "COPLAY", admit=admit, clock=FIXED)
    verdict = authorizer.answer(request(server, password=token(tokens)))
    assert verdict.refused == "invite revoked" and seen[0].sub == "alice"
    assert response(verdict.response, server)["error"] == "invite revoked"


def test_requests_not_signed_by_a_server_are_dropped_unanswered(
    authorizer: CalloutAuthorizer, tokens: TokenIssuer, server: NKey
) -> None:
    password = token(tokens)
    as_account = request(NKey(os.urandom(32), ACCOUNT), password=password)
    head, body, _ = request(server, password=password).split(".")
    other_sig = request(NKey(os.urandom(32), SERVER), password=password).split(".")[2]
    for bad in (
        as_account,
        f"{head}.{body}.{other_sig}",
        request(server, password=password, audience="something-else"),
        "not.a.jwt",
        "x" * (MAX_JWT_BYTES + 1),
    ):
        verdict = authorizer.answer(bad)
        assert verdict.response is None and verdict.refused.startswith("bad request")


def test_derived_keys_are_stable_per_secret_and_distinct() -> None:
    assert issuer_key(SECRET).public == issuer_key(Secret("s" * 48)).public
    assert issuer_key(SECRET).public.startswith("A") and callout_key(SECRET).public.startswith("U")
    assert issuer_key(Secret("t" * 48)).public != issuer_key(SECRET).public
    assert "s" * 48 not in repr(issuer_key(SECRET))


def test_decode_refuses_a_jwt_whose_claims_were_changed(server: NKey) -> None:
    signed = encode({"sub": "x", "nats": {"pub": {"allow": ["a"]}}}, server, NOW)
    assert decode(signed, SERVER)["sub"] == "x"
    head, _, sig = signed.split(".")
    widened = encode({"sub": "x", "nats": {"pub": {"allow": [">"]}}}, server, NOW).split(".")[1]
    with pytest.raises(NatsJwtError, match="signature"):
        decode(f"{head}.{widened}.{sig}", SERVER)


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("mqtt", "nats"),
    [
        ("coplay/+/in/alice", ["coplay.*.in.alice"]),
        ("coplay/s1/out/+", ["coplay.s1.out.*"]),
        ("coplay/s1/#", ["coplay.s1.>", "coplay.s1"]),
        ("#", [">"]),
        ("a/b", ["a.b"]),
    ],
)
def test_mqtt_filters_map_to_nats_subjects(mqtt: str, nats: list[str]) -> None:
    assert nats_subject(mqtt) == nats


def test_an_empty_acl_allows_nothing(tokens: TokenIssuer, server: NKey) -> None:
    """NATS reads a missing allow list as "everything": the callout must say deny instead."""
    claims = tokens.user_claims(username="alice", cid="d1@coplay", role="guest", lifetime_s=60)
    claims["acl"] = {"pub": [], "sub": []}
    authorizer = CalloutAuthorizer(tokens, issuer_key(SECRET), "COPLAY", clock=FIXED)
    verdict = authorizer.answer(request(server, password=tokens.sign_user_claims(claims)))
    perms = decode(response(verdict.response, server)["jwt"], ACCOUNT)["nats"]
    assert perms["pub"] == {"deny": [">"]} and perms["sub"] == {"deny": [">"]}


def _nats_matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token_ in enumerate(p):
        if token_ == ">":
            return len(s) > i
        if i >= len(s) or (token_ != "*" and token_ != s[i]):
            return False
    return len(p) == len(s)


TOPICS = [
    "coplay/s1/in/alice", "coplay/s1/in/bob", "coplay/s2/in/alice", "coplay/s1/out/alice",
    "coplay/s1/out/bob", "coplay/s1/host", "coplay/s1", "coplay/s1/in", "coplay/s1/in/alice/x",
    "other/s1/in/alice", "coplay/s1/host/x", "coplay",
]  # fmt: skip


@pytest.mark.parametrize(
    "rules",
    [
        acl("guest", "alice", "coplay"),
        acl("host", "streamer", "coplay"),
        acl("host", "streamer", "coplay", session="s1"),
        Acl(pub=("coplay/s1/#",), sub=("#",)),
    ],
    ids=["guest", "host", "host-s1", "wildcards"],
)
def test_emqx_and_nats_decide_every_topic_alike_for_the_same_acl_claim(rules: Acl) -> None:
    """EMQX applies the ``acl`` claim as MQTT filters; the callout gives NATS mapped subjects."""
    pub, sub = nats_subjects(rules)
    for topic in TOPICS:
        subject = topic.replace("/", ".")
        emqx_pub = any(topic_matches(f, topic) for f in rules.pub)
        emqx_sub = any(topic_matches(f, topic) for f in rules.sub)
        assert emqx_pub == any(_nats_matches(p, subject) for p in pub), (topic, "publish")
        assert emqx_sub == any(_nats_matches(p, subject) for p in sub), (topic, "subscribe")


def test_emqx_config_names_the_claims_the_callout_reads(
    tmp_path: Path, tokens: TokenIssuer
) -> None:
    """``emqx-config`` checks sub/cid and reads ``acl``: the same claims the callout verifies."""
    path = tmp_path / "relay.toml"
    path.write_text(
        '[[apps]]\nclient_id = "streamer-app"\nclient_secret = "x"\nhosts = ["streamer"]\n'
    )
    config = load_relay_config(path, env={"COPLAY_JWT_SECRET": SECRET.reveal()})
    text = emqx_config(config)
    verify = dict(re.findall(r'^\s+(\w+) = "\$\{(\w+)\}"', text, re.M))
    acl_claim = re.search(r'acl_claim_name = "(\w+)"', text)
    assert verify == {"sub": "username", "cid": "clientid"}
    assert acl_claim is not None
    claims = tokens.user_claims(username="alice", cid="d1@coplay", role="guest", lifetime_s=60)
    assert claims["sub"] == "alice" and claims["cid"] == "d1@coplay"  # EMQX: username, clientid
    verified = tokens.verify_user(
        tokens.sign_user_claims(claims), username="alice", client_id="d1@coplay"
    )
    assert claims[acl_claim[1]] == verified.acl.as_claim()  # the claim the callout maps
    assert nats_subjects(verified.acl) == (
        ["coplay.*.in.alice"],
        ["coplay.*.out.alice", "coplay.*.host"],
    )


# ---------------------------------------------------------------- invites


def test_revoked_invite_grants_are_refused_at_login(tokens: TokenIssuer, server: NKey) -> None:
    """The callout reads the relay's invite store: a revoked grant's tokens no longer log in."""
    store = InviteStore(":memory:", clock=FIXED)
    grant, _code = store.create(
        app="streamer-app", session="s1", username="alice", seat=None, ttl_s=3600, uses=1
    )
    authorizer = CalloutAuthorizer(
        tokens, issuer_key(SECRET), "COPLAY", admit=grant_admit(store), clock=FIXED
    )
    invited = tokens.user_token(
        username="alice", cid="d1@coplay", role="guest", lifetime_s=600,
        session="s1", grant=grant.id,
    )  # fmt: skip
    admitted = authorizer.answer(request(server, password=invited))
    assert admitted.refused == ""
    perms = decode(response(admitted.response, server)["jwt"], ACCOUNT)["nats"]
    assert perms["pub"] == {"allow": ["coplay.s1.in.alice"]}  # the invite's one session
    assert store.revoke(app="streamer-app", session="s1", username="alice") == [grant.id]
    refused = authorizer.answer(request(server, password=invited))
    assert refused.refused == REVOKED
    assert response(refused.response, server)["error"] == REVOKED
    unknown = tokens.user_token(
        username="alice", cid="d1@coplay", role="guest", lifetime_s=600, session="s1", grant=999
    )
    assert authorizer.answer(request(server, password=unknown)).refused == REVOKED
    plain = authorizer.answer(request(server, password=token(tokens)))  # no grant: not an invite
    assert plain.refused == ""


def test_the_cluster_needs_a_fixed_jwt_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ephemeral_secret = true`` would give every node keys no later relay can match: exit 78."""
    from relay.cli import main
    from relay.errors import ConfigError
    from relay.service.nats_callout import authorizer_for

    path = tmp_path / "relay.toml"
    path.write_text(
        '[server]\nephemeral_secret = true\n[[apps]]\nclient_id = "a"\nclient_secret = "x"\n'
    )
    assert main(["nats-config", "--config", str(path), "--nodes", "3"]) == 78
    assert "$.server.jwt_secret" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"\$\.server\.jwt_secret"):
        authorizer_for(load_relay_config(path, env={}), FIXED)
