"""The broker side of a revoke, on fakes: the connection is aborted and the reader stopped,
even when the reader swallows a cancellation (Python 3.11's wait_for can)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from relay.service.revocation import disconnect_grants, pin_grant, session_grant


class Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


@dataclass
class Writer:  # amqtt's StreamWriterAdapter keeps the asyncio writer in ``_writer``
    _writer: Any = field(default_factory=lambda: type("W", (), {"transport": Transport()})())


@dataclass
class Handler:
    _reader_task: asyncio.Task[None]
    writer: Writer = field(default_factory=Writer)


class Session:
    coplay_acl: object = "rules"


async def stubborn_reader(cancels: list[int]) -> None:
    """Swallows the first cancellation, as a read completing at that moment does."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels.append(1)
            if len(cancels) >= 2:
                return


def test_a_revoked_connection_is_aborted_and_its_reader_stopped() -> None:
    async def scenario() -> None:
        cancels: list[int] = []
        revoked, kept = Session(), Session()
        pin_grant(revoked, 7)
        pin_grant(kept, 8)
        revoked_handler = Handler(asyncio.create_task(stubborn_reader(cancels)))
        kept_handler = Handler(asyncio.create_task(asyncio.sleep(3600)))
        broker = type("B", (), {})()
        broker.sessions = {"a": (revoked, revoked_handler), "b": (kept, kept_handler)}
        await asyncio.sleep(0)
        assert session_grant(revoked) == 7
        try:
            assert disconnect_grants(broker, [7], "coplay_acl") == 1

            assert revoked.coplay_acl is None and kept.coplay_acl == "rules"
            assert revoked_handler.writer._writer.transport.aborted
            assert not kept_handler.writer._writer.transport.aborted
            await asyncio.wait({revoked_handler._reader_task}, timeout=2)  # wait, never cancel
            assert revoked_handler._reader_task.done(), "the reader still runs"
            assert len(cancels) == 2  # the first cancel was swallowed; it was cancelled again
            assert not kept_handler._reader_task.done()
        finally:
            for task in (revoked_handler._reader_task, kept_handler._reader_task):
                for _ in range(3):  # the stubborn one needs two
                    task.cancel()
                    await asyncio.sleep(0)

    asyncio.run(scenario())
