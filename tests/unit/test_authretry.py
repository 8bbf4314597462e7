"""The link's auth-retry policy alone: fresh credentials after a refusal, REFUSED after too many."""

from __future__ import annotations

from relay.authretry import AUTH_REFUSED_CODES, AuthRetry, Verdict
from relay.errors import AuthError, TokenApiError

BAD_PASSWORD, NOT_AUTHORIZED, SERVER_UNAVAILABLE = 0x86, 0x87, 0x88


def test_a_refused_password_makes_the_next_attempt_ask_for_fresh_credentials() -> None:
    policy = AuthRetry(max_retries=3)
    assert policy.take_refresh() is False  # the first attempt uses cached credentials
    assert policy.refused(BAD_PASSWORD) is Verdict.REFRESH
    assert policy.take_refresh() is True
    assert policy.take_refresh() is False  # only the one attempt after the refusal


def test_refusals_in_a_row_beyond_the_limit_give_up() -> None:
    policy = AuthRetry(max_retries=2)
    verdicts = [policy.refused(code) for code in (BAD_PASSWORD, NOT_AUTHORIZED, BAD_PASSWORD)]
    assert verdicts == [Verdict.REFRESH, Verdict.REFRESH, Verdict.GIVE_UP]
    assert policy.refusals == 3
    error = policy.refused_for_good("alice", "bad user name or password")
    assert isinstance(error, AuthError) and error.exit_code == 77
    assert "alice" in str(error) and "2 fresh ones" in str(error)


def test_an_accepted_connect_starts_the_count_again() -> None:
    policy = AuthRetry(max_retries=1)
    assert policy.refused(BAD_PASSWORD) is Verdict.REFRESH
    policy.accepted()
    assert policy.refused(BAD_PASSWORD) is Verdict.REFRESH  # not GIVE_UP: the count restarted
    assert policy.refused(BAD_PASSWORD) is Verdict.GIVE_UP


def test_other_refusals_are_plain_retries_and_do_not_count() -> None:
    policy = AuthRetry(max_retries=1)
    assert SERVER_UNAVAILABLE not in AUTH_REFUSED_CODES
    for _ in range(5):
        assert policy.refused(SERVER_UNAVAILABLE) is Verdict.RETRY
    assert policy.refusals == 0
    assert policy.take_refresh() is False


def test_app_credentials_refused_by_the_source_give_up_at_once() -> None:
    policy = AuthRetry(max_retries=3)
    assert policy.fetch_failed(AuthError("app refused"), refresh=False) is Verdict.GIVE_UP


def test_a_source_that_is_down_is_retried_and_a_due_refresh_stays_due() -> None:
    policy = AuthRetry(max_retries=3)
    policy.refused(BAD_PASSWORD)
    refresh = policy.take_refresh()
    assert policy.fetch_failed(TokenApiError("down"), refresh) is Verdict.RETRY
    assert policy.take_refresh() is True  # the next attempt still asks for fresh ones
    assert policy.fetch_failed(TokenApiError("down"), refresh=False) is Verdict.RETRY
    assert policy.take_refresh() is False
