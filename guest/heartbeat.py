"""When the guest says Hello and Ping: Hello until welcomed, Ping all along, while connected.

Hello (QoS 1) goes out on every connect and then every ``hello_interval``
until a Welcome (or a Pong or HostState that shows our seat) arrives; Ping
(QoS 0) every ``ping_interval``. While the link is down nothing is sent and
both are put off by the shorter interval. :class:`Heartbeat` holds only the
times; :class:`guest.session.Session` sends and calls it under its lock.
"""

from __future__ import annotations


class Heartbeat:
    """The next Hello and Ping times (monotonic seconds)."""

    def __init__(self, hello_interval: float, ping_interval: float) -> None:
        self._hello_interval = hello_interval
        self._ping_interval = ping_interval
        self._next_hello = 0.0
        self._next_ping = 0.0

    def hello_sent(self, now: float) -> None:
        """A Hello went out outside :meth:`due` (on connect): the next one after an interval."""
        self._next_hello = now + self._hello_interval

    def next_due(self, welcomed: bool) -> float:
        return self._next_ping if welcomed else min(self._next_hello, self._next_ping)

    def due(self, now: float, *, connected: bool, welcomed: bool) -> tuple[bool, bool]:
        """(Hello, Ping) to send at ``now``; their next times move on."""
        if not connected:
            self._next_hello = self._next_ping = now + min(
                self._hello_interval, self._ping_interval
            )
            return False, False
        hello = not welcomed and now >= self._next_hello
        ping = now >= self._next_ping
        if hello:
            self._next_hello = now + self._hello_interval
        if ping:
            self._next_ping = now + self._ping_interval
        return hello, ping
