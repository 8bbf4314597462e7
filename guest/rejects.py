"""What a Reject from the host means for the guest: wait for a seat, or stop for good.

``NOT_ALLOWED``, ``PROTOCOL`` and ``REPLACED`` (another guest signed in as
this user took the seat) are final: retrying cannot help, so the guest stops
with a :class:`~relay.errors.SessionRejected` (exit 75). ``FULL`` and
``SEAT_TAKEN`` (and codes this version does not know) are not: the guest says
why it waits and keeps asking.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.errors import SessionRejected
from relay.frames import RejectCode

FINAL_REJECTS = frozenset({RejectCode.NOT_ALLOWED, RejectCode.PROTOCOL, RejectCode.REPLACED})


@dataclass(frozen=True, slots=True)
class Verdict:
    """A Reject read: the text for the status line and, when final, the error to stop with."""

    label: str  # the code's name (``not_allowed``) or ``code N``
    note: str
    fatal: SessionRejected | None


def judge(user: str, code: int, reason: str) -> Verdict:
    """What Reject ``code`` (with the host's ``reason``) means for ``user``."""
    try:
        known: RejectCode | None = RejectCode(code)
    except ValueError:
        known = None
    label = known.name.lower() if known else f"code {code}"
    text = f"{label}: {reason}" if reason else label
    if known not in FINAL_REJECTS:
        return Verdict(label, f"waiting for a seat ({text})", None)
    advice = "; ask the streamer to allow you" if known is RejectCode.NOT_ALLOWED else ""
    return Verdict(label, text, SessionRejected(f"the host rejected {user!r} ({text}){advice}"))
