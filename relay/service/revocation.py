"""Revoked invites on the embedded broker: refuse their tokens, drop their connections at once.

:class:`~relay.service.broker.JwtAuthPlugin` pins each connection's invite
grant (the token's ``grant`` claim) to its amqtt session with
:func:`pin_grant` and refuses a CONNECT whose grant is no longer live
(:class:`GrantCheck`, the invite store). :func:`disconnect_grants` is what the
revoke endpoint calls: every connected session of those grants loses its ACL
(nothing more is delivered to it or accepted from it) and its connection is
aborted and its reader stopped, so the broker publishes its Last Will (the
guest's Bye) and the host's pad goes neutral at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any, Final, Protocol

import structlog

GRANT_ATTR: Final = "coplay_grant"


class GrantCheck(Protocol):
    """Whether an invite grant still stands (the invite store answers)."""

    def is_live(self, grant_id: int) -> bool: ...


def pin_grant(session: Any, grant: int | None) -> None:
    setattr(session, GRANT_ATTR, grant)


def session_grant(session: Any) -> int | None:
    found = getattr(session, GRANT_ATTR, None)
    return found if isinstance(found, int) else None


CANCEL_RETRY_S: Final = 0.05
_CUT_ATTR: Final = "coplay_cut"  # the handler holds its retry task (so it is not collected)


def _abort_transport(handler: Any) -> bool:
    """Close the connection under amqtt's writer adapter (TCP or WebSocket) without a goodbye."""
    writer = getattr(handler, "writer", None)
    for inner in (getattr(writer, "_writer", None), getattr(writer, "_protocol", None)):
        transport = getattr(inner, "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            transport.abort()
            return True
    return False


async def _cancel_until_done(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` until it ends: Python 3.11's ``wait_for`` can swallow a cancellation
    that lands as its read completes, which a client sending 60 frames a second makes likely."""
    while not task.done():
        task.cancel()
        await asyncio.sleep(CANCEL_RETRY_S)


def disconnect_grants(broker: Any, grants: Collection[int], acl_attr: str) -> int:
    """Cut every live connection of ``grants``; how many were cut. Runs on the broker's loop.

    The socket is aborted (the reader sees the connection end) and the reader task is
    cancelled until it stops; either way the broker sees an abnormal close and sends the
    Will.
    """
    wanted = set(grants)
    cut = 0
    for session, handler in list(broker.sessions.values()):
        if session_grant(session) not in wanted:
            continue
        setattr(session, acl_attr, None)  # nothing more in or out, from this moment
        task = getattr(handler, "_reader_task", None)
        if task is not None and not task.done():
            _abort_transport(handler)
            retry = asyncio.get_running_loop().create_task(_cancel_until_done(task))
            setattr(handler, _CUT_ATTR, retry)
            cut += 1
    if cut:
        structlog.get_logger("relay.broker").info(
            "mqtt_revoked_disconnected", connections=cut, grants=sorted(wanted)
        )
    return cut
