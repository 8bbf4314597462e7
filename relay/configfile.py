"""Reading a TOML config file: one decode into a Struct, one line naming file and field on error.

``load_toml(path, Kind)`` reads ``path`` and decodes it into ``Kind`` (a
``msgspec.Struct`` tree with ``forbid_unknown_fields``) in one call; every
failure is a :class:`~relay.errors.ConfigError` whose message is
``"<file>: $.<field path>: <what>"`` (:func:`field_first` puts the path first).
Also here: the value types and checks the config files share (names,
prefixes, URLs, listen addresses).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from relay.errors import ConfigError
from relay.topics import NAME_PATTERN, PREFIX_PATTERN

NameStr = Annotated[str, Meta(pattern=f"^{NAME_PATTERN}\\Z")]
PrefixStr = Annotated[str, Meta(pattern=f"^{PREFIX_PATTERN}\\Z")]
OptionalName = Annotated[str, Meta(pattern=f"^({NAME_PATTERN})?\\Z")]

T = TypeVar("T")


def load_toml(path: Path, kind: type[T]) -> T:
    """``path`` decoded into ``kind``; ConfigError naming the file (and field) otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        # the one line says it all; the OSError's own text would repeat it
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")  # checked here: TOML is UTF-8, whatever the parser says
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 at byte {exc.start}") from exc
    try:
        return msgspec.toml.decode(text, type=kind)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {field_first(str(exc))}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")
_NAMED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?): (.+)")


def field_first(message: str) -> str:
    """msgspec says "what - at `$.a.b`"; lead with the full field path instead.

    A missing or unknown key and a ``__post_init__`` message that starts with
    ``"field: "`` name their field, so it is appended to the path.
    """
    what, sep, where = message.rpartition(" - at ")
    where = where.strip("`") if sep else "$"
    what = what if sep else message
    if match := _MISSING.fullmatch(what):
        return f"{where}.{match[1]}: missing required key"
    if match := _UNKNOWN.fullmatch(what):
        return f"{where}.{match[1]}: unknown key"
    if match := _NAMED.fullmatch(what):
        return f"{where}.{match[1]}: {match[2]}"
    return f"{where}: {what}"


def check_url(field: str, value: str, schemes: Collection[str], expected: str) -> None:
    """ValueError naming ``field`` unless ``value`` is a URL with one of ``schemes`` and a host.

    The message never echoes a user name or password written into the URL.
    """
    url = urlsplit(value)
    shown = value
    if url.username is not None or url.password is not None:
        shown = value.replace(url.netloc, url.netloc.rpartition("@")[2], 1)
    try:
        url.port  # noqa: B018 (raises ValueError for a port that is not a number in 0-65535)
    except ValueError as exc:
        # urllib's text quotes the port only, never the user:password part before the host
        raise ValueError(f"{field}: bad port in {shown!r}") from exc
    if url.scheme not in schemes or not url.hostname:
        raise ValueError(f"{field}: must be {expected}, got {shown!r}")


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"[::1]:8080"`` -> (host, port); ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)
