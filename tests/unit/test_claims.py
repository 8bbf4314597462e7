"""User and app tokens: claims, verification, and what must be refused."""

from __future__ import annotations

import jwt
import pytest

from relay.secrets import Secret
from relay.service.claims import InvalidToken, TokenIssuer, role_for
from relay.topics import acl

SECRET = "k" * 48


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer(clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(Secret(SECRET), prefix="coplay", clock=clock)


def test_user_token_has_the_design_claims(issuer: TokenIssuer) -> None:
    token = issuer.user_token(username="alice", cid="d1@coplay", role="guest", lifetime_s=600)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "sub": "alice",
        "cid": "d1@coplay",
        "role": "guest",
        "iat": 1_700_000_000,
        "exp": 1_700_000_600,
        "acl": acl("guest", "alice", "coplay").as_claim(),
    }
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_host_role_and_acl(issuer: TokenIssuer) -> None:
    assert role_for("streamer", frozenset({"streamer"})) == "host"
    assert role_for("alice", frozenset({"streamer"})) == "guest"
    token = issuer.user_token(username="streamer", cid="h@coplay", role="host", lifetime_s=60)
    verified = issuer.verify_user(token, username="streamer", client_id="h@coplay")
    assert verified.role == "host"
    assert verified.acl == acl("host", "streamer", "coplay")


def test_verify_checks_username_and_client_id(issuer: TokenIssuer) -> None:
    token = issuer.user_token(username="alice", cid="d1@coplay", role="guest", lifetime_s=600)
    assert issuer.verify_user(token, username="alice", client_id="d1@coplay").sub == "alice"
    with pytest.raises(InvalidToken, match="username"):
        issuer.verify_user(token, username="bob", client_id="d1@coplay")
    with pytest.raises(InvalidToken, match="client id"):
        issuer.verify_user(token, username="alice", client_id="d2@coplay")


def test_expired_user_token_is_refused(issuer: TokenIssuer, clock: FakeClock) -> None:
    token = issuer.user_token(username="alice", cid="d1@coplay", role="guest", lifetime_s=60)
    clock.now += 59
    issuer.verify_user(token)
    clock.now += 1
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify_user(token)


def test_app_token_is_never_a_user_token_and_vice_versa(issuer: TokenIssuer) -> None:
    app = issuer.app_token("streamer-app", 3600)
    assert issuer.verify_app(app) == "streamer-app"
    with pytest.raises(InvalidToken):
        issuer.verify_user(app)
    with pytest.raises(jwt.InvalidSignatureError):  # not even EMQX, which has only the secret
        jwt.decode(app, SECRET, algorithms=["HS256"], options={"verify_aud": False})
    user = issuer.user_token(username="alice", cid="d1@coplay", role="guest", lifetime_s=60)
    with pytest.raises(InvalidToken):
        issuer.verify_app(user)


def test_app_token_claims_signed_with_the_user_key_are_refused(issuer: TokenIssuer) -> None:
    forged = issuer.sign_user_claims(
        {
            "sub": "alice", "cid": "d1@coplay", "role": "guest", "iat": 1_700_000_000,
            "exp": 1_700_000_600, "acl": {"pub": [], "sub": []}, "typ": "app",
            "aud": "coplay-relay-api",
        }
    )  # fmt: skip
    with pytest.raises(InvalidToken, match="not a user token"):
        issuer.verify_user(forged)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),  # claims missing
        jwt.encode({"sub": "alice", "cid": "d1@coplay"}, "other" * 10, algorithm="HS256"),
        jwt.encode({"sub": "alice"}, SECRET * 2, algorithm="HS512"),
    ],
)
def test_malformed_or_foreign_tokens_are_refused(issuer: TokenIssuer, token: str) -> None:
    with pytest.raises(InvalidToken):
        issuer.verify_user(token)


def test_none_algorithm_is_refused(issuer: TokenIssuer) -> None:
    claims = issuer.user_claims(username="alice", cid="d1@coplay", role="host", lifetime_s=60)
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(InvalidToken):
        issuer.verify_user(unsigned)


def test_malformed_acl_claim_is_refused(issuer: TokenIssuer) -> None:
    claims = issuer.user_claims(username="alice", cid="d1@coplay", role="guest", lifetime_s=60)
    claims["acl"] = ["#"]
    with pytest.raises(InvalidToken, match="malformed"):
        issuer.verify_user(issuer.sign_user_claims(claims))


def test_invalid_username_cannot_be_issued(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="username"):
        issuer.user_token(username="a/b", cid="d1@coplay", role="guest", lifetime_s=60)


def test_invalid_token_message_never_contains_the_token(issuer: TokenIssuer) -> None:
    token = issuer.user_token(username="alice", cid="d1@coplay", role="guest", lifetime_s=60)
    with pytest.raises(InvalidToken) as caught:
        issuer.verify_user(token + "x")
    assert token not in str(caught.value)
