"""One Reject per user, epoch and code (host rules 2 and 3): who was told what last.

The seat table asks :meth:`RejectOnce.reply` for every frame it refuses; only
the first refusal of an ``(epoch, code)`` gets a Reject, the repeats are
silence. The daemon's byte and rate limits (:mod:`host.intake`) may still hold
a Reject back; :meth:`RejectOnce.forget` then lets the next try be answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from host.drops import HostDrop
from host.effects import NO_EFFECTS, Effect, Reply
from relay.frames import PROTO, Reject, RejectCode

REJECT_MEMORY: Final = 1024  # users whose last Reject is remembered

REJECT_DROPS: Final = {
    RejectCode.NOT_ALLOWED: HostDrop.NOT_ALLOWED,
    RejectCode.FULL: HostDrop.FULL,
    RejectCode.REPLACED: HostDrop.STALE_EPOCH,
    RejectCode.PROTOCOL: HostDrop.PROTOCOL,
}
REJECT_REASONS: Final = {
    RejectCode.NOT_ALLOWED: "this user is not allowed on this host",
    RejectCode.FULL: "every seat is taken",
    RejectCode.REPLACED: "this session ended or a newer coplay-guest of this user took over",
    RejectCode.PROTOCOL: f"this host speaks coplay protocol {PROTO}; use a matching coplay-guest",
}


class RejectOnce:
    """The last ``(epoch, code)`` each user was refused with (at most ``limit`` users)."""

    def __init__(self, limit: int = REJECT_MEMORY) -> None:
        self._limit = limit
        self._last: dict[str, tuple[int, int]] = {}

    def reply(self, user: str, epoch: int, code: RejectCode) -> Sequence[Effect]:
        """A Reject for ``user``, unless this ``(epoch, code)`` was answered already."""
        if self._last.get(user) == (epoch, code):
            return NO_EFFECTS
        if len(self._last) >= self._limit:
            self._last.clear()
        self._last[user] = (epoch, code)
        return (Reply(user, Reject(epoch, code, REJECT_REASONS[code]), 1),)

    def forget(self, user: str, epoch: int, code: RejectCode) -> None:
        """That Reject was not sent after all: answer the next such frame again."""
        if self._last.get(user) == (epoch, code):
            del self._last[user]

    def seated(self, user: str) -> None:
        """``user`` took a seat: a later refusal is news again."""
        self._last.pop(user, None)
