"""Exceptions in callbacks on the link's thread: counted, logged, and shown in the status line."""

from __future__ import annotations

import threading

import structlog

from guest.callbacks import CallbackErrors
from guest.session import Session
from guest.status import StatusView, format_line
from relay.frames import FrameCodec, Rumble
from relay.linkstatus import LinkState, LinkStatus
from relay.topics import Topics

TOPICS = Topics("pfx", "s1")


def session(**kwargs: object) -> Session:
    options: dict[str, object] = {"name": "Alice", "controller": lambda: "Pad X", **kwargs}
    return Session(TOPICS, "alice", 1, lambda topic, payload, qos: True, **options)  # type: ignore[arg-type]


def test_an_exception_in_a_link_callback_does_not_escape_and_is_counted() -> None:
    """The link thread (paho) never sees it; the count rises once per failed callback."""

    def broken_news() -> None:
        raise RuntimeError("the wake-up pipe broke")

    s = session(on_news=broken_news)
    s.on_status(LinkStatus(LinkState.CONNECTED))
    s.on_connect()  # on_news raises after the Hello
    s.on_message(TOPICS.output("alice"), FrameCodec().encode(Rumble(1, 2, 3)), False)
    assert s.errors.count == 2
    assert s.inbox.take_rumbles() == [Rumble(1, 2, 3)]  # what was done before the failure stands


def test_a_broken_controller_lookup_in_hello_is_counted() -> None:
    def no_controller() -> str | None:
        raise KeyError("pad vanished")

    s = session(controller=no_controller)
    s.on_status(LinkStatus(LinkState.CONNECTED))
    s.on_connect()
    assert s.errors.count == 1


def test_the_status_line_shows_callback_errors_only_when_there_are_some() -> None:
    view = StatusView("connected", 2, True, 3.0, 0.1, 60.0, "Pad X")
    assert "callback" not in format_line(view)
    assert format_line(
        StatusView("connected", 2, True, 3.0, 0.1, 60.0, "Pad X", callback_errors=1)
    ).endswith("1 callback error (see the log)")
    three = StatusView("connected", 2, True, 3.0, 0.1, 60.0, "Pad X", callback_errors=3)
    assert "3 callback errors (see the log)" in format_line(three)
    assert three.fields()["callback_errors"] == 3
    assert three.key() != view.key()  # a new error is a change: a plain status line at once


def test_errors_are_logged_first_then_at_most_once_per_interval() -> None:
    now = [0.0]
    errors = CallbackErrors(log_every_s=10.0, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        for t in (0.0, 1.0, 2.0, 11.0):
            now[0] = t
            with errors.guard("on_message"):
                raise ValueError("bad")
    assert errors.count == 4
    assert [e["errors"] for e in logs if e["event"] == "callback_failed"] == [1, 4]


def test_counting_is_safe_from_many_threads() -> None:
    errors = CallbackErrors()

    def fail_many() -> None:
        for _ in range(500):
            with errors.guard("x"):
                raise RuntimeError

    threads = [threading.Thread(target=fail_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors.count == 2000
