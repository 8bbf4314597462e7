"""What the entry point builds for the host daemon (input-remapper's ``bin/`` style).

:func:`host.cli.serve` builds each collaborator and hands them to
:class:`~host.daemon.HostDaemon` together as :class:`HostParts`; tests build
the same from fakes. The link is the one part made later, by the daemon, through
``make_link``: it needs the daemon's callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from host.faults import Faults
from host.intake import Intake
from host.notify import Notifier
from host.sinks.base import Sink
from host.writer import PadWriter
from relay.clock import Clock
from relay.linkstatus import LinkLike, Message, MessageHandler


class LinkFactory(Protocol):
    def __call__(
        self,
        *,
        on_message: MessageHandler,
        subscriptions: Sequence[tuple[str, int]],
        will: Message,
        on_connect: Callable[[], None],
    ) -> LinkLike: ...


@dataclass(frozen=True, slots=True)
class HostParts:
    """The daemon's collaborators, each owned by the part that holds it."""

    writer: PadWriter  # the seat table and the pad queue, behind its lock; its thread
    sink: Sink  # the pads: opened and closed by the daemon, written by the writer
    make_link: LinkFactory  # called once by the daemon, with its callbacks
    clock: Clock
    notifier: Notifier  # systemd's notify socket, or nothing
    intake: Intake  # per-user budgets and Reject limits (paho's network thread)
    faults: Faults  # exceptions in callbacks, counted for the status line
