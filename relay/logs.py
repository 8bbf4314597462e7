"""structlog set-up, done once by each entry point, and the redaction that guards secrets.

On a terminal the log is coloured console lines; otherwise (systemd's journal,
a pipe, a file) one JSON object per line. Logs go to stderr, so stdout stays
free for what a command prints on purpose (``devices``, ``emqx-config``).

:class:`Redactor` is the one processor that keeps tokens, secrets and
passwords out of every line at every level: it blanks values under key names
that look secret, JWT-shaped strings anywhere, and every value registered
with :meth:`Redactor.add` (the config's secrets, each token as it is fetched)
wherever it appears inside any string.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, MutableMapping
from typing import Any, Final, TextIO

import structlog

from relay.secrets import Secret

REDACTED: Final = "[redacted]"
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|authorization|credential)", re.I)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
LEVELS: Final = ("debug", "info", "warning", "error", "critical")


class Redactor:
    """A structlog processor that removes secrets from every event dict."""

    def __init__(self, secrets: Iterable[Secret | str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: Secret | str | None) -> None:
        """Remember a value that must never be printed (ignored if empty or very short)."""
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value or len(value) < 4:
            return
        with self._lock:
            if value not in self._values:
                # longest first, so a secret containing another is blanked whole
                self._values = tuple(sorted((*self._values, value), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return _JWT.sub(REDACTED, text)

    def _clean(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Secret):
            return REDACTED
        if depth > 4:  # too deep to walk: flatten it, still scrubbed
            return self.scrub(repr(value))
        if isinstance(value, dict):
            return {
                self._clean(k, depth + 1): REDACTED
                if isinstance(k, str) and _SECRET_KEY.search(k)
                else self._clean(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return type(value)(self._clean(v, depth + 1) for v in value)
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self.scrub(repr(value))

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if _SECRET_KEY.search(key) and key not in ("event",):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(event_dict[key])
        return event_dict


def configure_logging(
    level: str = "info",
    *,
    redactor: Redactor,
    json: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Set structlog up for this process. ``json=None`` picks JSON unless ``stream`` is a tty."""
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(out, "isatty") and out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    if json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=True))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_level_number(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging (uvicorn, amqtt, paho) go through the same redaction.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, processors[-1]],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                processors[2],
                structlog.processors.format_exc_info,  # the traceback text gets redacted too
                redactor,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(_level_number(level), logging.INFO))


def _level_number(level: str) -> int:
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    return int(getattr(logging, name.upper()))


class Throttle:
    """Lets an event through at most once per ``interval`` seconds per key; counts the rest.

    At most ``max_keys`` keys are remembered (both tables are emptied when a new key
    would pass it), so keys built from network input cannot grow memory without end.
    """

    def __init__(self, interval: float, clock: Any = None, max_keys: int = 256) -> None:
        self._interval = interval
        self._now = clock or time.monotonic
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        now = self._now()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            if key in self.suppressed or len(self.suppressed) < self._max_keys:
                self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        if last is None and len(self._last) >= self._max_keys:
            self._last.clear()
            self.suppressed.clear()
        self._last[key] = now
        return True

    def take_suppressed(self, key: str) -> int:
        return self.suppressed.pop(key, 0)
