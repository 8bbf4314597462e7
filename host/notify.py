"""systemd's notify protocol (sd_notify) in a few lines: READY, STATUS, WATCHDOG, STOPPING.

Only active when ``NOTIFY_SOCKET`` is set (a ``Type=notify`` unit); a leading
``@`` names an abstract socket. ``WATCHDOG_USEC`` (set with ``WatchdogSec=``)
gives the interval the daemon must ping within; we ping at half of it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from typing import Protocol


class Notifier(Protocol):
    def notify(self, message: str) -> None: ...

    @property
    def watchdog_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half of WATCHDOG_USEC), or None when not asked."""
        ...

    def close(self) -> None: ...


class NullNotifier:
    """Not under systemd: every message goes nowhere."""

    watchdog_s: float | None = None

    def notify(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class SocketNotifier:
    """Datagrams to ``NOTIFY_SOCKET``; a lost datagram is not worth failing for."""

    def __init__(self, address: str, watchdog_usec: int | None = None) -> None:
        self._address = "\0" + address[1:] if address.startswith("@") else address
        # non-blocking: a notify reader that stops reading (its queue holds ~10 datagrams)
        # must never stall the daemon's main loop; such a datagram is dropped instead
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        self._sock = socket.socket(socket.AF_UNIX, kind)
        self.watchdog_s = watchdog_usec / 2e6 if watchdog_usec else None

    def notify(self, message: str) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendto(message.encode("utf-8", "replace"), self._address)

    def close(self) -> None:
        self._sock.close()


def notifier_from_env(env: Mapping[str, str]) -> Notifier:
    """A SocketNotifier when systemd gave us NOTIFY_SOCKET, else a NullNotifier."""
    address = env.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return NullNotifier()
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    watchdog = int(usec) if usec.isdigit() and (not pid or pid == str(os.getpid())) else None
    return SocketNotifier(address, watchdog)
