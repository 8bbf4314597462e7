"""The three topic forms, name validation, and the access rules every broker enforces.

``{prefix}/{session}/in/{user}``   guest -> host   (Input, Ping, Hello, Bye)
``{prefix}/{session}/out/{user}``  host -> guest   (Welcome, Reject, Pong, Rumble)
``{prefix}/{session}/host``        host -> all     (HostState, retained)

The ``{user}`` in a topic is who sent it: the ACL lets a guest publish only on
its own ``in/`` topic, so the host trusts the topic, not the payload.
:func:`acl` is the single source of those rules; the embedded broker, the
Mosquitto ACL file and the EMQX ``acl`` claim are all generated from it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Final, Literal

NAME_PATTERN: Final = r"[A-Za-z0-9_-]{1,64}"
PREFIX_PATTERN: Final = r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}"
_NAME = re.compile(NAME_PATTERN)
_PREFIX = re.compile(PREFIX_PATTERN)

Role = Literal["host", "guest"]


def is_valid_name(value: str) -> bool:
    """True for a legal session or user name: 1-64 of ``A-Za-z0-9_-``."""
    return _NAME.fullmatch(value) is not None


def is_valid_prefix(value: str) -> bool:
    """True for a legal topic prefix: one to four name-like levels, no wildcards."""
    return _PREFIX.fullmatch(value) is not None


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    HOST = "host"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    session: str
    direction: Direction
    user: str | None  # None for the host topic


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names for one session under one prefix."""

    prefix: str
    session: str
    _in_head: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not is_valid_prefix(self.prefix):
            raise ValueError(f"invalid topic prefix {self.prefix!r}")
        if not is_valid_name(self.session):
            raise ValueError(f"invalid session name {self.session!r}")
        object.__setattr__(self, "_in_head", f"{self.prefix}/{self.session}/in/")

    def input(self, user: str) -> str:
        """Where ``user`` publishes (ValueError for a name that is not legal)."""
        return f"{self.prefix}/{self.session}/in/{_checked_user(user)}"

    def output(self, user: str) -> str:
        """Where the host answers ``user`` (ValueError for a name that is not legal)."""
        return f"{self.prefix}/{self.session}/out/{_checked_user(user)}"

    @property
    def host(self) -> str:
        return f"{self.prefix}/{self.session}/host"

    @property
    def inputs(self) -> str:
        """The host's subscription: every guest's ``in/`` topic in this session."""
        return f"{self.prefix}/{self.session}/in/+"

    def input_user(self, topic: str) -> str | None:
        """The sender of a message on this session's ``in/`` topic, or None (hot path)."""
        if not topic.startswith(self._in_head):
            return None
        user = topic[len(self._in_head) :]
        return user if is_valid_name(user) else None


def _checked_user(user: str) -> str:
    if not is_valid_name(user):
        raise ValueError(f"invalid user name {user!r}")
    return user


def parse(prefix: str, topic: str) -> ParsedTopic | None:
    """Split a topic under ``prefix`` into its parts, or None if it is not one of ours."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) == 2 and parts[1] == Direction.HOST and is_valid_name(parts[0]):
        return ParsedTopic(parts[0], Direction.HOST, None)
    if (
        len(parts) == 3
        and parts[1] in (Direction.IN, Direction.OUT)
        and is_valid_name(parts[0])
        and is_valid_name(parts[2])
    ):
        return ParsedTopic(parts[0], Direction(parts[1]), parts[2])
    return None


@dataclass(frozen=True, slots=True)
class Acl:
    """Topic filters one client may publish to and subscribe to (EMQX ``acl`` claim shape)."""

    pub: tuple[str, ...]
    sub: tuple[str, ...]

    def as_claim(self) -> dict[str, list[str]]:
        return {"pub": list(self.pub), "sub": list(self.sub)}


def acl(role: Role, username: str, prefix: str = "coplay", session: str = "+") -> Acl:
    """The access rules for ``username`` in ``role``.

    A guest may publish only ``{prefix}/+/in/{username}`` and subscribe only to
    ``{prefix}/+/out/{username}`` and ``{prefix}/+/host``; a guest of an invite
    gets its one session in place of ``+``. A host may subscribe to
    ``{prefix}/{session}/in/+`` and publish ``{prefix}/{session}/out/+`` and
    ``{prefix}/{session}/host``; tokens are issued before the host names its
    session, so the relay grants hosts ``session="+"`` (any session).
    """
    if not is_valid_name(username):
        raise ValueError(f"invalid username {username!r}")
    if session != "+" and not is_valid_name(session):
        raise ValueError(f"invalid session name {session!r}")
    if role == "guest":
        return Acl(
            pub=(f"{prefix}/{session}/in/{username}",),
            sub=(f"{prefix}/{session}/out/{username}", f"{prefix}/{session}/host"),
        )
    return Acl(
        pub=(f"{prefix}/{session}/out/+", f"{prefix}/{session}/host"),
        sub=(f"{prefix}/{session}/in/+",),
    )


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest).

    As MQTT says, a filter that starts with a wildcard does not match a topic
    that starts with ``$`` (``$SYS/...``). A ``+`` or ``#`` in ``topic`` is a
    plain character.
    """
    return _covers(topic_filter, topic, requested_is_filter=False)


def filter_covers(allowed: str, requested: str) -> bool:
    """True when every topic matched by filter ``requested`` is also matched by ``allowed``."""
    return _covers(allowed, requested, requested_is_filter=True)


def _covers(allowed: str, requested: str, *, requested_is_filter: bool) -> bool:
    """``allowed`` matches ``requested``: a topic, or (``requested_is_filter``) all of a filter's.

    A wildcard in a requested filter is covered only by a wildcard at least as wide
    (``+`` by ``+`` or ``#``, ``#`` by ``#``); in a topic it is a plain character.
    """
    if requested.startswith("$") and allowed[:1] in ("+", "#"):
        return False
    a_parts = allowed.split("/")
    r_parts = requested.split("/")
    for i, part in enumerate(a_parts):
        if part == "#":
            return True
        if i >= len(r_parts):
            return False
        if requested_is_filter and r_parts[i] == "#":
            return False
        if part == "+":
            continue
        if (requested_is_filter and r_parts[i] == "+") or part != r_parts[i]:
            return False
    return len(a_parts) == len(r_parts)


def mosquitto_acl(hosts: list[str], prefix: str = "coplay") -> str:
    """A Mosquitto ACL file with the same rules as :func:`acl`.

    Guests get ``pattern`` lines (``%u`` is the connecting username); each host
    username gets its own ``user`` block.
    """
    lines = [
        "# coplay access rules (generated by coplay-relay mosquitto-acl)",
        "# guests: publish only on their own in/ topic; read their out/ topic and host state",
        f"pattern write {prefix}/+/in/%u",
        f"pattern read {prefix}/+/out/%u",
        f"pattern read {prefix}/+/host",
    ]
    for host in hosts:
        rules = acl("host", host, prefix)
        lines.append("")
        lines.append(f"user {host}")
        lines.extend(f"topic write {t}" for t in rules.pub)
        lines.extend(f"topic read {t}" for t in rules.sub)
    return "\n".join(lines) + "\n"
