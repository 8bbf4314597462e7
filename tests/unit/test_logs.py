"""Logging: JSON lines off a terminal, console on one, secrets never printed, throttling."""

from __future__ import annotations

import io
import json
import logging
import os
import select
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import pytest
import structlog

from relay.logs import REDACTED, Redactor, Throttle, configure_logging
from relay.secrets import Secret

SECRET = "s3cr3t-Value-9f8e7d"
LATE_SECRET = "tok-AAAAbbbbCCCCdddd"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJhbGljZSIsImNpZCI6ImRAY29wbGF5In0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
UNREGISTERED = "plain-but-private-42"  # only safe because of the key it is logged under


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


class Captured:
    def __init__(self, stream: io.StringIO, redactor: Redactor) -> None:
        self.stream = stream
        self.redactor = redactor

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def capture(restore_logging: None) -> Callable[..., Captured]:
    def make(level: str = "debug", **kwargs: Any) -> Captured:
        stream = io.StringIO()  # not a terminal
        redactor = Redactor([Secret(SECRET)])
        configure_logging(level, redactor=redactor, stream=stream, **kwargs)
        return Captured(stream, redactor)

    return make


def log_everything_secret(redactor: Redactor) -> None:
    """Every way a token or secret could reach a log line, at debug level."""
    log = structlog.get_logger("coplay.test")
    log.debug(f"connecting with {SECRET} now", user="alice")
    log.debug("token_fetched", token_value=JWT, note=f"Bearer {JWT}")
    log.debug("header", hdr=f"Authorization: {JWT}")
    log.debug("secret_in_kwarg", detail=SECRET, wrapped=f"x{SECRET}x")
    log.debug("secret_in_nested", body={"a": {"b": [SECRET, {"c": (SECRET,)}]}})
    log.debug("secret_deep", deep={"1": {"2": {"3": {"4": {"5": {"6": [SECRET]}}}}}})
    log.debug("secret_as_key", mapping={SECRET: 1})
    log.debug("secret_object", value=Secret(UNREGISTERED))
    log.debug("secret_bytes", raw=SECRET.encode())
    log.debug(
        "key_names",
        password=UNREGISTERED,
        access_token=UNREGISTERED,
        app_client_secret=UNREGISTERED,
        Authorization=UNREGISTERED,
        nested={"password": UNREGISTERED, "appClientSecret": UNREGISTERED},
    )
    log.info("positional %s", SECRET)
    try:
        raise ValueError(f"refused {SECRET}")
    except ValueError:
        log.exception("failed_with_secret")
    redactor.add(LATE_SECRET)  # a token fetched after logging was set up
    log.debug("late_token", value=LATE_SECRET, event_text=f"got {LATE_SECRET}")
    std = logging.getLogger("paho.test")
    std.warning("stdlib %s and %s", SECRET, JWT)
    std.warning("stdlib f-string " + SECRET)
    std.error("stdlib late %s", LATE_SECRET)
    try:
        raise RuntimeError(f"stdlib exc {SECRET}")
    except RuntimeError:
        std.exception("stdlib_failed")


def assert_clean(text: str) -> None:
    for value in (SECRET, JWT, UNREGISTERED, LATE_SECRET, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"):
        assert value not in text
    assert REDACTED in text


# ---------------------------------------------------------------- JSON vs console


def test_json_lines_when_not_a_terminal(capture: Callable[..., Captured]) -> None:
    out = capture()
    log = structlog.get_logger()
    log.info("seat_taken", seat=2, user="alice")
    log.debug("frame_dropped", reason="oversized")
    logging.getLogger("uvicorn").warning("from stdlib")
    records = out.records()
    assert [r["event"] for r in records] == ["seat_taken", "frame_dropped", "from stdlib"]
    assert records[0]["seat"] == 2
    assert records[0]["user"] == "alice"
    assert [r["level"] for r in records] == ["info", "debug", "warning"]
    assert all("timestamp" in r for r in records)


def test_every_line_is_json_even_with_exceptions(capture: Callable[..., Captured]) -> None:
    out = capture()
    log_everything_secret(out.redactor)
    records = out.records()
    assert len(records) == 17
    assert any("ValueError" in r.get("exception", "") for r in records)
    stdlib_exc = [r for r in records if r["event"] == "stdlib_failed"]
    assert "RuntimeError" in stdlib_exc[0]["exception"]  # a readable traceback, redacted


def test_json_can_be_forced_and_level_filters(capture: Callable[..., Captured]) -> None:
    out = capture("warning", json=True)
    log = structlog.get_logger()
    log.info("hidden")
    log.debug("hidden")
    log.warning("shown")
    logging.getLogger("x").info("hidden too")
    assert [r["event"] for r in out.records()] == ["shown"]


def test_unknown_level_is_refused(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", redactor=Redactor(), stream=io.StringIO())


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_renderer_on_a_terminal(restore_logging: None) -> None:
    stream = FakeTerminal()
    configure_logging("debug", redactor=Redactor([SECRET]), stream=stream)
    structlog.get_logger().info("seat_taken", seat=2, secret_hint=SECRET)
    text = stream.getvalue()
    assert "seat_taken" in text
    assert "\x1b[" in text  # coloured
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
    assert SECRET not in text


def test_console_renderer_on_a_real_pty(restore_logging: None) -> None:
    """A real pseudo-terminal, as a user running the command in a shell has."""
    master, slave = os.openpty()
    stream: TextIO = open(slave, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
    try:
        assert stream.isatty()
        configure_logging("debug", redactor=Redactor([SECRET]), stream=stream)
        log = structlog.get_logger()
        log.debug("pad_neutral", reason="stale", token=JWT)
        log.info(f"with {SECRET}")
        stream.flush()
        text = _read_available(master)
    finally:
        stream.close()
        os.close(master)
    assert "pad_neutral" in text
    assert "reason" in text
    assert not text.lstrip().startswith("{")
    assert SECRET not in text
    assert JWT not in text


def _read_available(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 2.0)[0]:
        data = os.read(fd, 65536)
        chunks.append(data)
        if b"with" in b"".join(chunks) and b"\n" in data:
            break
    return b"".join(chunks).decode("utf-8", "replace")


# ---------------------------------------------------------------- redaction


def test_no_secret_in_json_output_at_debug(capture: Callable[..., Captured]) -> None:
    """A token and a secret logged at debug, every way they can be, appear nowhere."""
    out = capture()
    log_everything_secret(out.redactor)
    assert_clean(out.text)
    records = out.records()
    by_event = {r["event"]: r for r in records}
    assert by_event["connecting with [redacted] now"]["user"] == "alice"  # the rest survives
    assert by_event["key_names"]["password"] == REDACTED
    assert by_event["key_names"]["nested"]["appClientSecret"] == REDACTED
    assert by_event["secret_in_kwarg"]["wrapped"] == f"x{REDACTED}x"


def test_no_secret_in_console_output_at_debug(restore_logging: None) -> None:
    stream = FakeTerminal()
    redactor = Redactor([SECRET])
    configure_logging("debug", redactor=redactor, stream=stream)
    log_everything_secret(redactor)
    assert "failed_with_secret" in stream.getvalue()
    assert_clean(stream.getvalue())


def test_redactor_alone() -> None:
    redactor = Redactor([Secret(SECRET), "abc", ""])  # too-short values are ignored
    assert redactor.scrub(f"a {SECRET} b {JWT}") == f"a {REDACTED} b {REDACTED}"
    assert redactor.scrub("abc abc") == "abc abc"
    cleaned = redactor(None, "info", {"event": "x", "token": "t", "n": 3, "none": None})
    assert cleaned == {"event": "x", "token": REDACTED, "n": 3, "none": None}


def test_a_secret_containing_another_is_blanked_whole() -> None:
    redactor = Redactor(["abcd", "xxabcdxx"])
    assert redactor.scrub("xxabcdxx") == REDACTED


# ---------------------------------------------------------------- throttle


class Tick:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_lets_one_through_per_interval_per_key() -> None:
    clock = Tick()
    throttle = Throttle(1.0, clock=clock)
    assert throttle.allow("drop")
    assert not throttle.allow("drop")
    assert not throttle.allow("drop")
    assert throttle.allow("other")  # keys are independent
    assert not throttle.allow("other")
    clock.now += 0.75
    assert not throttle.allow("drop")
    assert throttle.take_suppressed("drop") == 3
    assert throttle.take_suppressed("drop") == 0  # taken
    assert throttle.suppressed == {"other": 1}
    clock.now += 0.25  # exactly one interval after the last allowed
    assert throttle.allow("drop")
    assert throttle.allow("other")


def test_throttle_interval_restarts_from_the_last_allowed() -> None:
    clock = Tick()
    throttle = Throttle(2.0, clock=clock)
    allowed = []
    for _ in range(10):
        allowed.append(throttle.allow("k"))
        clock.now += 0.5
    assert allowed == [True, False, False, False, True, False, False, False, True, False]


def test_throttle_with_the_real_clock() -> None:
    throttle = Throttle(60.0)
    assert throttle.allow("k")
    assert not throttle.allow("k")
    zero = Throttle(0.0)
    assert zero.allow("k")
    assert zero.allow("k")
