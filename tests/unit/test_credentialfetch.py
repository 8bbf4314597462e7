"""Credentials for a connect attempt: fetched on one worker, and stop() ends a wait at once."""

from __future__ import annotations

import threading

import pytest

from relay.credentialfetch import CredentialFetcher, LinkStopped
from relay.errors import TokenApiError
from relay.secrets import Secret
from relay.tokens import Credentials

WAIT = 10.0


class GatedSource:
    """A CredentialSource whose calls block until the test opens the gate; records the threads."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.threads: list[int] = []
        self.calls: list[str] = []
        self.fail_with: Exception | None = None

    def _answer(self, kind: str) -> Credentials:
        self.threads.append(threading.get_ident())
        self.calls.append(kind)
        self.entered.set()
        assert self.gate.wait(WAIT)
        if self.fail_with is not None:
            raise self.fail_with
        return Credentials("dev@coplay", "alice", Secret(f"pw-{kind}-{len(self.calls)}"))

    def get(self) -> Credentials:
        return self._answer("get")

    def refresh(self) -> Credentials:
        return self._answer("refresh")

    def close(self) -> None:
        pass


def test_fetches_run_on_one_worker_for_the_life_of_the_fetcher() -> None:
    source = GatedSource()
    source.gate.set()
    fetcher = CredentialFetcher(source)
    first = fetcher.fetch(refresh=False)
    second = fetcher.fetch(refresh=True)
    third = fetcher.fetch(refresh=False)
    fetcher.stop()
    assert [c.password.reveal() for c in (first, second, third)] == [
        "pw-get-1",
        "pw-refresh-2",
        "pw-get-3",
    ]
    assert len(set(source.threads)) == 1  # one worker, not a thread per attempt
    assert source.threads[0] != threading.get_ident()


def test_stop_releases_a_caller_waiting_for_a_slow_source_at_once() -> None:
    source = GatedSource()
    fetcher = CredentialFetcher(source)
    outcome: list[BaseException | Credentials] = []

    def attempt() -> None:
        try:
            outcome.append(fetcher.fetch(refresh=False))
        except LinkStopped as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=attempt)
    waiter.start()
    assert source.entered.wait(WAIT)
    fetcher.stop()
    waiter.join(WAIT)  # returns although the source is still blocked
    assert not waiter.is_alive()
    assert isinstance(outcome[0], LinkStopped)
    source.gate.set()  # the worker finishes its fetch; nobody waits for it any more
    with pytest.raises(LinkStopped):
        fetcher.fetch(refresh=False)


def test_the_source_error_reaches_the_caller() -> None:
    source = GatedSource()
    source.gate.set()
    source.fail_with = TokenApiError("token API unreachable")
    fetcher = CredentialFetcher(source)
    with pytest.raises(TokenApiError, match="unreachable"):
        fetcher.fetch(refresh=True)
    fetcher.stop()
