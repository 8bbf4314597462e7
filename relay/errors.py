"""The errors coplay raises, and the exit code each one maps to.

::

    CoplayError                   exit 1: anything unexpected but ours
     ├── UsageError               exit 2: bad command line
     ├── ConfigError              exit 78: bad or missing config, secret or device setup
     │    └── DeviceError         exit 78: a virtual pad cannot be created (uinput)
     ├── AuthError                exit 77: the app credentials or user token were refused
     ├── TokenApiError            exit 69: the token API failed and retrying did not help
     ├── LinkError                exit 69: the broker could not be reached or kept
     └── SessionRejected          exit 75: the host rejected this guest (seat full, not allowed)

Errors from paho, httpx, pygame and evdev are wrapped where they enter coplay
and chained (``raise AuthError(...) from exc``), so a user reads one sentence.
Bad input from the network is never an exception: it is counted and dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_TEMPFAIL = 75
EXIT_CREDENTIALS = 77
EXIT_CONFIG = 78


class CoplayError(Exception):
    """Root of every error coplay raises on purpose."""

    exit_code = EXIT_FAILURE


class UsageError(CoplayError):
    """The command line is wrong."""

    exit_code = EXIT_USAGE


class ConfigError(CoplayError):
    """A config file, secret or local setup is wrong; the message names the file and field."""

    exit_code = EXIT_CONFIG


class DeviceError(ConfigError):
    """A virtual pad cannot be created; the message names the fix."""


class AuthError(CoplayError):
    """Credentials were refused (app client secret, user token, broker password)."""

    exit_code = EXIT_CREDENTIALS


class TokenApiError(CoplayError):
    """The token API answered with an error, or could not be reached, after retrying."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LinkError(CoplayError):
    """The MQTT broker could not be reached or refused us for good."""

    exit_code = EXIT_UNAVAILABLE


class SessionRejected(CoplayError):
    """The host answered Reject: no seat, or this user is not allowed."""

    exit_code = EXIT_TEMPFAIL


@contextmanager
def needs_extra(what: str, extra: str, install: str = "") -> Iterator[None]:
    """Imports in this block that fail become one ConfigError naming the extra to install."""
    try:
        yield
    except ImportError as exc:
        raise ConfigError(
            f"{what} needs the {extra} extra (missing {exc.name or exc}): "
            f"pip install 'coplay[{install or extra}]'"
        ) from exc
