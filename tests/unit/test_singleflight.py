"""One call in flight: callers arriving meanwhile wait for its outcome instead of calling again."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from relay.singleflight import SingleFlight

WAIT = 10.0


def wait_until(predicate: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.005)):
        if predicate():
            return
        done.wait(0.005)
    raise AssertionError("condition not met")


def test_a_caller_arriving_meanwhile_shares_the_result() -> None:
    flight: SingleFlight[str] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        started.set()
        assert release.wait(WAIT)
        return "token"

    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(flight.run(slow)))
    first.start()
    assert started.wait(WAIT)
    assert flight.busy
    second = threading.Thread(target=lambda: results.append(flight.run(slow)))
    second.start()
    wait_until(lambda: flight.waiters == 1)  # waiting on the flight, not blocked on a lock
    release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert results == ["token", "token"]
    assert calls == [1]
    assert not flight.busy and flight.waiters == 0


def test_a_failure_reaches_every_caller_and_the_next_call_runs_again() -> None:
    flight: SingleFlight[str] = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def failing() -> str:
        started.set()
        assert release.wait(WAIT)
        raise RuntimeError("down")

    errors: list[BaseException] = []

    def call() -> None:
        try:
            flight.run(failing)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call)]
    threads[0].start()
    assert started.wait(WAIT)
    threads.append(threading.Thread(target=call))
    threads[1].start()
    wait_until(lambda: flight.waiters == 1)
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert [str(e) for e in errors] == ["down", "down"]
    assert flight.run(lambda: "fresh") == "fresh"


def test_calls_one_after_another_each_run() -> None:
    flight: SingleFlight[int] = SingleFlight()
    counter = iter(range(10))
    assert [flight.run(lambda: next(counter)) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError):
        flight.run(lambda: {}["x"])
    assert not flight.busy
