"""What one client may cost the embedded broker, and the counters that show it was enforced.

Every bound is a ``[server]`` key of relay.toml (defaults in
:class:`relay.service.config.ServerSection`):

=========================  ==========================================================
``max_packet_bytes``       an MQTT packet larger than this (fixed header's remaining
                           length; coplay frames are <= 512 B) drops the client before
                           its body is read (:class:`PacketReader`)
``connect_timeout_s``      a socket that sends no complete CONNECT this long is closed;
                           a socket closed before CONNECT is closed on our side too
``max_connections``        sockets over this are closed at once (LimitNOFILE in the
                           unit is sized above it)
``max_subscriptions``      topic filters one client may hold; more are refused (SUBACK
                           0x80), so delivery never walks an attacker's 50k filters;
                           more refusals than that drop the client
``max_pending_out``        deliveries queued or unacknowledged for one client (a QoS 1
                           subscriber that never sends PUBACK, a reader that stopped
                           reading); at the bound the client is dropped, not the
                           broker's memory; a persistent offline session queues at
                           most as many messages
``max_publish_per_s``      PUBLISH packets per second from one client (a burst of one
                           second's worth); over it, the client is dropped
=========================  ==========================================================

Retained messages are kept only on a host's own ``{prefix}/{session}/host`` (see
:func:`may_retain`): a retained PUBLISH or Will elsewhere is delivered but not stored.
The log throttles key on a fixed set of reasons, never on text a client chose
(:class:`relay.logs.Throttle` is also capped in size).

amqtt 0.12 has none of these bounds, so they are enforced around it:
:class:`PacketReader` (here) frames packets itself (public MQTT framing, no amqtt
code) between the socket and amqtt: packet size, the CONNECT deadline, the publish
rate; :mod:`relay.service.amqtt_hooks` overrides amqtt's broker and protocol handler
for the rest (connection count, subscriptions, retained and offline bounds, pending
deliveries) and is what :mod:`relay.service.broker` mixes in.

Each is attacked by ``tests/integration/test_broker_limits.py`` and the load suite.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from amqtt.adapters import ReaderAdapter
from amqtt.errors import NoDataError

from relay.topics import topic_matches

PUBLISH: Final = 3
_MAX_LENGTH_BYTES: Final = 4  # MQTT's remaining length is at most four bytes


class LimitExceeded(Exception):
    """A client went over one of the broker's bounds; its connection is closed."""

    def __init__(self, counter: str) -> None:
        super().__init__(counter)
        self.counter = counter


class ConnectRefused(NoDataError):  # type: ignore[misc]
    """No usable CONNECT (timeout, closed, oversized): amqtt gives up on the socket."""


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    max_packet_bytes: int = 4096
    connect_timeout_s: float = 10.0
    max_connections: int = 1000
    max_subscriptions: int = 16
    max_pending_out: int = 256
    max_publish_per_s: int = 1000

    @classmethod
    def of(cls, server: Any) -> BrokerLimits:
        """The limits from a :class:`relay.service.config.ServerSection`."""
        return cls(**{f.name: getattr(server, f.name) for f in fields(cls)})


# the counters the relay's status shows (all start at 0, so a status line lists them all)
COUNTERS: Final = (
    "connections_refused",  # over max_connections
    "connect_timeouts",  # no CONNECT within connect_timeout_s
    "closed_before_connect",  # the socket closed or sent garbage before CONNECT
    "oversized_packets",  # over max_packet_bytes (client dropped)
    "subscriptions_refused",  # over max_subscriptions
    "subscription_flood_dropped",  # clients dropped after more refusals than the cap
    "pending_out_dropped",  # clients dropped at max_pending_out
    "offline_queue_dropped",  # messages not queued for an offline session at the bound
    "publish_rate_dropped",  # clients dropped over max_publish_per_s
    "retained_refused",  # retained PUBLISH or Will on a topic that is not a host topic
)


class BrokerStats:
    """Counters and the live connection count (touched only on the broker's event loop)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.live = 0

    def count(self, name: str) -> None:
        self.counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        return {"connections": self.live, **dict(self.counts)}


class PacketReader(ReaderAdapter):  # type: ignore[misc]
    """A reader adapter that reads whole MQTT packets and refuses the ones over the limits.

    amqtt reads a packet field by field; this adapter reads the next packet's fixed
    header itself, checks its remaining length against ``max_packet_bytes`` (before
    reading, so a 256 MB announcement costs nothing), counts a PUBLISH against the
    client's rate, then reads the body and serves amqtt's reads from it. Any bound
    crossed raises :class:`LimitExceeded`, which ends amqtt's reader loop and closes the
    connection (the Will goes out, as for any abnormal close).
    """

    def __init__(
        self,
        inner: ReaderAdapter,
        limits: BrokerLimits,
        stats: BrokerStats,
        clock: Any = time.monotonic,
    ) -> None:
        self._inner = inner
        self.limits = limits
        self.stats = stats
        self.dropped = False  # this client was dropped over a limit (counted once)
        self._max = limits.max_packet_bytes
        self._rate = float(limits.max_publish_per_s)
        self._tokens = self._rate
        self._clock = clock
        self._updated = clock()
        self._buffer = bytearray()
        self._connected = False  # past the first packet (the CONNECT)

    async def read(self, n: int = -1) -> bytes:
        if not self._buffer:
            if self._connected:
                await self._guarded()
            else:
                await self._first_packet()
        if n < 0 or n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            try:
                chunk = await self._inner.read(n - len(data))
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise NoDataError("the connection closed") from exc
            if not chunk:
                raise NoDataError("the connection closed")
            data += chunk
        return data

    async def _first_packet(self) -> None:
        """The CONNECT: within ``connect_timeout_s``; any failure ends the socket quietly."""
        try:
            await asyncio.wait_for(self._next_packet(), self.limits.connect_timeout_s)
        except TimeoutError as exc:
            self.stats.count("connect_timeouts")
            raise ConnectRefused("no CONNECT in time") from exc
        except LimitExceeded as exc:
            self.stats.count(exc.counter)
            raise ConnectRefused(exc.counter) from exc
        except NoDataError as exc:
            self.stats.count("closed_before_connect")
            raise ConnectRefused("closed before CONNECT") from exc
        self._connected = True

    async def _guarded(self) -> None:
        try:
            await self._next_packet()
        except LimitExceeded as exc:
            if not self.dropped:
                self.dropped = True
                self.stats.count(exc.counter)
            raise

    async def _next_packet(self) -> None:
        header = bytearray(await self._exactly(1))
        length, multiplier = 0, 1
        for _ in range(_MAX_LENGTH_BYTES):
            byte = (await self._exactly(1))[0]
            header.append(byte)
            length += (byte & 0x7F) * multiplier
            if not byte & 0x80:
                break
            multiplier *= 128
        else:
            raise LimitExceeded("oversized_packets")  # a malformed length: treated as too big
        if length + len(header) > self._max:
            raise LimitExceeded("oversized_packets")
        if header[0] >> 4 == PUBLISH:
            now = self._clock()
            self._tokens = min(self._rate, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            if self._tokens < 1:
                raise LimitExceeded("publish_rate_dropped")
            self._tokens -= 1
        self._buffer += header
        if length:
            self._buffer += await self._exactly(length)

    def feed_eof(self) -> None:
        self._inner.feed_eof()


def may_retain(pub_filters: Sequence[str] | None, topic: str | None) -> bool:
    """Only a host's ``{prefix}/{session}/host`` is retained.

    A host's ACL publishes ``{X}/out/+`` and ``{X}/host`` (``X`` = prefix and session,
    the session possibly ``+``); a guest's has the one filter ``{prefix}/+/in/{user}``.
    So the topic must match a ``{X}/host`` filter that comes with its ``{X}/out/+``,
    whatever a session or user is called (a user named "host" gains nothing).
    """
    if not pub_filters or not topic:
        return False
    return any(
        f.endswith("/host") and f"{f[:-5]}/out/+" in pub_filters and topic_matches(f, topic)
        for f in pub_filters
    )


async def report_status(stats: BrokerStats, interval_s: float, log: Any) -> None:
    """Log ``broker_status`` with the counters every ``interval_s`` seconds (0: never)."""
    if interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        log.info("broker_status", **stats.snapshot())


FILES_BESIDES_CLIENTS: Final = 128  # listeners, the token API's sockets, the state db, logs


def ensure_open_files(max_connections: int, log: Any) -> None:
    """Raise the soft open-file limit to cover ``max_connections``; warn when it cannot.

    At the limit, accept() fails and the token API stops answering too, so the units set
    LimitNOFILE above the default ``max_connections`` (see systemd/coplay-relay.service).
    """
    try:  # under a seccomp filter even reading the limit may be refused: then trust the unit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except OSError:
        return
    wanted = max_connections + FILES_BESIDES_CLIENTS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            try:  # the unit's SystemCallFilter=~@resources refuses it: LimitNOFILE did it
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (OSError, ValueError):
                pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open_file_limit_low",
            limit=soft,
            wanted=wanted,
            hint="raise LimitNOFILE in the unit, or lower [server] max_connections",
        )
