"""Token client logic with a fake clock and httpx.MockTransport: flow, cache, retries, errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from relay.errors import AuthError, TokenApiError
from relay.logs import REDACTED, Redactor
from relay.secrets import Secret
from relay.tokens import (
    APP_TOKEN_PATH,
    USER_TOKEN_PATH,
    StaticCredentials,
    TokenClient,
    credential_source,
)
from tests.support.link_helpers import link_settings

API = "http://tokens.test"
APP_SECRET = "app-secret-value-123"
LIFETIME = 3600


class FakeClock:
    """Monotonic and wall time that only move when the code under test sleeps (or a test says)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_now = 1_700_000_000.0
        self.sleeps: list[float] = []
        self.during_sleep: Callable[[], None] | None = None  # runs inside sleep, on its thread

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.during_sleep is not None:
            self.during_sleep()
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall_now += seconds


def ok(token: str, expires_in: Any = LIFETIME, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"access_token": token, **extra}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return httpx.Response(200, json={"code": 200, "msg": "success", "body": body})


def fail(status: int, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"code": status, "msg": "fail", "body": text}, headers=headers
    )


Answer = httpx.Response | Exception | Callable[[], httpx.Response | Exception]


class FakeApi:
    """Answers each endpoint from a script (one entry per call, the last repeats); records calls.

    An entry is a response, an exception to raise, or a callable giving either (it may block).
    """

    def __init__(self) -> None:
        self.app: list[Answer] = [ok("app-token-1")]
        self.user: list[Answer] = [ok("user-token-1")]
        self.calls: list[httpx.Request] = []

    def paths(self) -> list[str]:
        return [r.url.path for r in self.calls]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        script = self.app if request.url.path == APP_TOKEN_PATH else self.user
        n = sum(1 for r in self.calls if r.url.path == request.url.path)
        entry = script[min(n, len(script)) - 1]
        if callable(entry):
            entry = entry()
        if isinstance(entry, Exception):
            raise entry
        return entry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def make_client(
    clock: FakeClock, api: FakeApi, redactor: Redactor
) -> Iterator[Callable[..., TokenClient]]:
    made: list[TokenClient] = []

    def make(**kwargs: Any) -> TokenClient:
        settings = link_settings(
            "mqtt://127.0.0.1:1883",
            "alice",
            api_url=kwargs.pop("api_url", API),
            app_client_secret=Secret(APP_SECRET),
            device_id="dev1",
            token_lifetime_s=LIFETIME,
        )
        client = TokenClient(
            settings,
            redactor,
            transport=httpx.MockTransport(api),
            clock=clock,
            wall=clock.wall,
            sleep=clock.sleep,
            rng=lambda: 0.5,
            **kwargs,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_two_step_flow(
    make_client: Callable[..., TokenClient], api: FakeApi, redactor: Redactor
) -> None:
    """App token, then user token with the raw app token as Authorization and cid = device@app."""
    creds = make_client().get()
    assert api.paths() == [APP_TOKEN_PATH, USER_TOKEN_PATH]
    app_req, user_req = api.calls
    assert str(app_req.url) == API + APP_TOKEN_PATH
    assert json.loads(app_req.content) == {
        "appClientId": "streamer-app",
        "appClientSecret": APP_SECRET,
    }
    assert user_req.headers["Authorization"] == "app-token-1"
    assert json.loads(user_req.content) == {
        "username": "alice",
        "expires_in": LIFETIME,
        "cid": "dev1@coplay",
    }
    assert creds.username == "alice"
    assert creds.client_id == "dev1@coplay"
    assert creds.password.reveal() == "user-token-1"
    assert creds.expires_at == pytest.approx(1000.0 + LIFETIME)
    for value in ("app-token-1", "user-token-1", APP_SECRET):
        assert redactor.scrub(f"x {value} y") == f"x {REDACTED} y"


def test_api_url_with_path_prefix(make_client: Callable[..., TokenClient], api: FakeApi) -> None:
    """An api_url with a path keeps it in front of the endpoint paths."""
    make_client(api_url=API + "/easemob").get()
    assert str(api.calls[0].url) == API + "/easemob" + APP_TOKEN_PATH


def test_tokens_are_cached(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    client = make_client()
    first = client.get()
    clock.advance(LIFETIME * 0.79)
    assert client.get() == first
    assert len(api.calls) == 2


def test_refreshed_at_80_percent(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    """Past 80 % of the lifetime get() fetches new tokens (app token too, same lifetime here)."""
    api.app = [ok("app-token-1"), ok("app-token-2")]
    api.user = [ok("user-token-1"), ok("user-token-2")]
    client = make_client()
    client.get()
    clock.advance(LIFETIME * 0.81)
    assert client.get().password.reveal() == "user-token-2"
    assert api.calls[-1].headers["Authorization"] == "app-token-2"


def test_refresh_postponed_while_token_still_valid(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    """API down during the refresh window: one try, no waiting, the still-valid token is kept."""
    client = make_client()
    client.get()
    api.app = [ok("app-token-1"), httpx.ConnectError("refused")]
    clock.advance(LIFETIME * 0.9)
    assert client.get().password.reveal() == "user-token-1"
    assert clock.sleeps == []
    clock.advance(LIFETIME * 0.2)  # now expired: a real fetch, which fails after retrying
    with pytest.raises(TokenApiError):
        client.get()
    assert clock.sleeps


def test_missing_expires_in_means_requested_lifetime(
    make_client: Callable[..., TokenClient], api: FakeApi
) -> None:
    """A provider that omits expires_in (and adds fields): the requested lifetime is assumed."""
    api.user = [ok("user-token-1", expires_in=None, application="x", extra={"a": 1})]
    creds = make_client().get()
    assert creds.expires_at == pytest.approx(1000.0 + LIFETIME)


@pytest.mark.parametrize("scale", [1, 1000])
def test_absolute_expiry_is_understood(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock, scale: int
) -> None:
    """Some providers send expires_in as an epoch time (seconds or milliseconds)."""
    api.user = [ok("user-token-1", expires_in=int((clock.wall_now + 600) * scale))]
    creds = make_client().get()
    assert creds.expires_at == pytest.approx(1000.0 + 600, abs=1)


@pytest.mark.parametrize(
    ("expires_in", "lives"),
    [
        (600, 600),
        (600.5, 600.5),
        ("600", 600),
        (" 600 ", 600),
        (0, LIFETIME),
        (-5, LIFETIME),
        ("soon", LIFETIME),
        ("", LIFETIME),
    ],
)
def test_lifetime_forms_a_provider_may_send(
    make_client: Callable[..., TokenClient], api: FakeApi, expires_in: Any, lives: float
) -> None:
    """Seconds as a number or a numeric string; nonsense or non-positive: the requested lifetime."""
    api.user = [ok("user-token-1", expires_in=expires_in)]
    creds = make_client().get()
    assert creds.expires_at == pytest.approx(1000.0 + lives)


def test_5xx_retried_with_capped_backoff_and_jitter(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    api.app = [fail(503, "busy")] * 6 + [ok("app-token-1")]
    client = make_client(backoff_base_s=1.0, backoff_cap_s=8.0, retry_budget_s=1000)
    assert client.get().password.reveal() == "user-token-1"
    # rng = 0.5: three quarters of min(cap, base * 2^n)
    assert clock.sleeps == pytest.approx([0.75, 1.5, 3.0, 6.0, 6.0, 6.0])


def test_429_honours_retry_after_seconds(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    api.user = [fail(429, "slow down", {"Retry-After": "7"}), ok("user-token-1")]
    assert make_client().get().password.reveal() == "user-token-1"
    assert clock.sleeps == [7.0]


def test_429_honours_retry_after_http_date(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    when = formatdate(clock.wall_now + 20, usegmt=True)
    api.app = [fail(429, "slow down", {"Retry-After": when}), ok("app-token-1")]
    make_client().get()
    assert clock.sleeps == [pytest.approx(20.0, abs=1.0)]


def test_network_errors_are_retried(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    api.app = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ok("app-token-1")]
    assert make_client().get().password.reveal() == "user-token-1"
    assert len(clock.sleeps) == 2


def test_retry_budget_ends_in_token_api_error(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    """The API never comes back: TokenApiError once the budget is spent, not an endless loop."""
    api.app = [fail(502, "bad gateway")]
    with pytest.raises(TokenApiError) as caught:
        make_client(retry_budget_s=30.0).get()
    assert "502" in str(caught.value)
    assert sum(clock.sleeps) <= 30.0
    assert caught.value.exit_code == 69


def test_app_401_is_auth_error_at_once(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    """Bad app credentials: AuthError (exit 77) after one request, no retry, no secret in text."""
    api.app = [fail(401, "invalid app credentials")]
    with pytest.raises(AuthError) as caught:
        make_client().get()
    assert len(api.calls) == 1 and clock.sleeps == []
    assert caught.value.exit_code == 77
    assert "invalid app credentials" in str(caught.value)
    assert APP_SECRET not in str(caught.value)


def test_user_401_with_cached_app_token_refetches_app_token_once(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    """The app token went bad early: dropped, fetched anew, the user token asked once more."""
    api.app = [ok("app-token-1", expires_in=10 * LIFETIME), ok("app-token-2")]
    api.user = [ok("user-token-1"), fail(401, "token expired"), ok("user-token-2")]
    client = make_client()
    client.get()
    assert client.refresh().password.reveal() == "user-token-2"
    assert api.paths()[2:] == [USER_TOKEN_PATH, APP_TOKEN_PATH, USER_TOKEN_PATH]
    assert api.calls[-1].headers["Authorization"] == "app-token-2"


def test_user_401_twice_is_auth_error(
    make_client: Callable[..., TokenClient], api: FakeApi
) -> None:
    api.app = [ok("app-token-1", expires_in=10 * LIFETIME), ok("app-token-2")]
    api.user = [ok("user-token-1"), fail(401, "no such user")]
    client = make_client()
    client.get()
    with pytest.raises(AuthError):
        client.refresh()
    assert api.paths().count(APP_TOKEN_PATH) == 2
    assert api.paths().count(USER_TOKEN_PATH) == 3


def test_user_401_with_fresh_app_token_is_auth_error_at_once(
    make_client: Callable[..., TokenClient], api: FakeApi
) -> None:
    api.user = [fail(401, "user not allowed")]
    with pytest.raises(AuthError, match="alice"):
        make_client().get()
    assert api.paths() == [APP_TOKEN_PATH, USER_TOKEN_PATH]


def test_400_is_token_api_error_without_retry(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    api.user = [fail(400, "username is not valid")]
    with pytest.raises(TokenApiError) as caught:
        make_client().get()
    assert caught.value.status == 400
    assert "username is not valid" in str(caught.value)
    assert clock.sleeps == []


def test_fail_envelope_with_http_200_is_an_error(
    make_client: Callable[..., TokenClient], api: FakeApi
) -> None:
    """Some gateways answer 200 with a failure envelope: its code counts."""
    api.app = [httpx.Response(200, json={"code": 401, "msg": "fail", "body": "bad secret"})]
    with pytest.raises(AuthError):
        make_client().get()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>proxy</html>"),
        httpx.Response(200, json={"code": 200, "msg": "success", "body": {}}),
        httpx.Response(200, json={"code": 200, "msg": "success", "body": "x"}),
    ],
)
def test_malformed_success_is_retried_then_error(
    make_client: Callable[..., TokenClient], api: FakeApi, response: httpx.Response
) -> None:
    api.app = [response]
    with pytest.raises(TokenApiError):
        make_client(retry_budget_s=5.0).get()


def test_refresh_fetches_a_new_user_token_keeping_app_token(
    make_client: Callable[..., TokenClient], api: FakeApi
) -> None:
    api.user = [ok("user-token-1"), ok("user-token-2")]
    client = make_client()
    client.get()
    assert client.refresh().password.reveal() == "user-token-2"
    assert api.paths() == [APP_TOKEN_PATH, USER_TOKEN_PATH, USER_TOKEN_PATH]


def test_tokens_never_in_errors_or_logs(
    make_client: Callable[..., TokenClient], api: FakeApi
) -> None:
    """Even a server that echoes the token in its error text cannot put it in our exception."""
    api.user = [ok("user-token-1"), fail(400, "bad token user-token-1 / app-token-1")]
    client = make_client()
    with capture_logs() as logs:
        client.get()
        with pytest.raises(TokenApiError) as caught:
            client.refresh()
    text = str(caught.value) + repr(logs)
    for value in ("user-token-1", "app-token-1", APP_SECRET):
        assert value not in text


def test_close_interrupts_a_waiting_retry(api: FakeApi) -> None:
    """close() from another thread ends a get() that is sleeping between retries."""
    api.app = [fail(503, "down")]
    settings = link_settings("mqtt://h", "alice", api_url=API, app_client_secret=Secret(APP_SECRET))
    client = TokenClient(settings, transport=httpx.MockTransport(api), backoff_base_s=30.0)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.get()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    while not api.calls:
        threading.Event().wait(0.01)
    client.close()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(errors[0], TokenApiError)


def test_credential_source_picks_by_api_url() -> None:
    static = credential_source(link_settings("mqtt://h", "alice", "pw1234"))
    assert isinstance(static, StaticCredentials)
    creds = static.get()
    assert (creds.username, creds.password.reveal(), creds.client_id) == (
        "alice",
        "pw1234",
        static.get().client_id,
    )
    assert static.refresh() == creds
    tokens = credential_source(
        link_settings("mqtt://h", "alice", api_url=API, app_client_secret=Secret("s3cret"))
    )
    assert isinstance(tokens, TokenClient)
    tokens.close()


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    pause = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        pause.wait(0.005)
    raise AssertionError("condition not met")


def test_two_refreshes_at_once_make_one_request_and_no_sleep_holds_a_lock(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    """While one refresh sleeps between retries, a second one waits for its result (no lock held,
    no request of its own) and both get the same new token."""
    api.user = [ok("user-token-1"), fail(503, "busy"), ok("user-token-2")]
    client = make_client()
    client.get()
    sleeping, release = threading.Event(), threading.Event()

    def hold() -> None:
        sleeping.set()
        assert release.wait(10)

    clock.during_sleep = hold
    got: list[str] = []
    first = threading.Thread(target=lambda: got.append(client.refresh().password.reveal()))
    first.start()
    assert sleeping.wait(10)
    second = threading.Thread(target=lambda: got.append(client.refresh().password.reveal()))
    second.start()
    try:
        _wait_until(lambda: client._flight.waiters == 1)  # it reached the flight: no lock held it
        assert client.retry_state() is not None
    finally:
        release.set()
    first.join(10)
    second.join(10)
    assert got == ["user-token-2", "user-token-2"]
    assert api.paths().count(USER_TOKEN_PATH) == 3  # the first fetch, one 503, one retry
    assert len(clock.sleeps) == 1


def test_a_refresh_that_joined_a_failed_one_try_refresh_retries_itself(
    make_client: Callable[..., TokenClient], api: FakeApi, clock: FakeClock
) -> None:
    """get() in the refresh window tries once and keeps the old token; a refresh() that waited for
    that try does not inherit its failure: it fetches with retries."""
    in_request, release = threading.Event(), threading.Event()

    def blocked_then_unreachable() -> Exception:
        in_request.set()
        assert release.wait(10)
        return httpx.ConnectError("refused")

    api.user = [ok("user-token-1"), blocked_then_unreachable, ok("user-token-2")]
    client = make_client()
    client.get()
    clock.advance(LIFETIME * 0.9)
    got: dict[str, str] = {}
    quick = threading.Thread(target=lambda: got.update(get=client.get().password.reveal()))
    quick.start()
    assert in_request.wait(10)
    patient = threading.Thread(
        target=lambda: got.update(refresh=client.refresh().password.reveal())
    )
    patient.start()
    try:
        _wait_until(lambda: client._flight.waiters == 1)
    finally:
        release.set()
    quick.join(10)
    patient.join(10)
    assert got == {"get": "user-token-1", "refresh": "user-token-2"}
    assert api.paths().count(USER_TOKEN_PATH) == 3
