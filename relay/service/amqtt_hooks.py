"""Where the broker's limits hook into amqtt: the broker and protocol-handler overrides.

:mod:`relay.service.limits` holds the bounds, the counters and the packet reader;
this module overrides amqtt 0.12's classes to apply them (mixed in by
:mod:`relay.service.broker`):

- :class:`BrokerLimitsMixin` overrides the broker's connect hooks (``stream_connected``,
  ``ws_connected``: connection count, the reader, closing the socket, the WebSocket
  message size), ``add_subscription`` and ``retain_message``, and two private parts:
  ``_retain_broadcast_message`` (the offline queue) and the ``_subscriptions`` table,
  replaced by a :class:`SnapshotDict` whose iteration is a copy, so a subscribe during
  a delivery no longer raises "dictionary changed size during iteration";
- :class:`HandlerLimits` overrides the protocol handler's ``mqtt_publish`` (pending
  deliveries) and drops a client by cancelling its reader and aborting its socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Final

from amqtt.adapters import (
    ReaderAdapter,
    StreamReaderAdapter,
    StreamWriterAdapter,
    WebSocketsReader,
    WebSocketsWriter,
    WriterAdapter,
)

from relay.service.limits import BrokerLimits, BrokerStats, PacketReader, may_retain

WS_MESSAGE_PACKETS: Final = 16  # a WebSocket message may carry this many max-size packets


class SnapshotDict(dict[str, list[Any]]):
    """amqtt's subscription table, iterated over a copy.

    The broker awaits (plugins, sends) while it walks this table, and a SUBSCRIBE handled
    meanwhile adds a key: with a plain dict that is "dictionary changed size during
    iteration" and a lost delivery. Iterating a snapshot (keys, and each filter's list of
    subscribers) makes delivery see the table as it was when it began.
    """

    def __iter__(self) -> Any:
        return iter(list(super().keys()))

    def items(self) -> Any:
        return [(key, list(value)) for key, value in super().items()]

    def keys(self) -> Any:
        return list(super().keys())


class HandlerLimits:
    """Mixed into the broker's protocol handler: the bound on pending deliveries."""

    _coplay_pending = 0

    async def mqtt_publish(
        self, topic: str, data: Any, qos: int | None, retain: bool, ack_timeout: int | None = None
    ) -> Any:
        reader = getattr(self, "reader", None)
        if not isinstance(reader, PacketReader):  # not one of our listeners
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)  # type: ignore[misc]
        session = getattr(self, "session", None)
        inflight = len(getattr(session, "inflight_out", ()))
        if self._coplay_pending >= reader.limits.max_pending_out or (
            inflight >= reader.limits.max_pending_out
        ):
            if not reader.dropped:
                reader.dropped = True
                reader.stats.count("pending_out_dropped")
                self.coplay_drop("pending_out_dropped")
            return None
        self._coplay_pending += 1
        try:
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)  # type: ignore[misc]
        finally:
            self._coplay_pending -= 1

    def coplay_drop(self, why: str) -> None:
        """Close this client's connection (its reader loop ends; the Will goes out)."""
        session = getattr(self, "session", None)
        inflight = getattr(session, "inflight_out", None)
        if inflight is not None:
            inflight.clear()  # what it never acknowledged is not kept for it
        if session is not None:
            session.coplay_dropped = True
        task = getattr(self, "_reader_task", None)
        if task is not None and not task.done():
            task.cancel()
        # close the socket now: what amqtt still has queued for this client (SUBACKs for a
        # flood of SUBSCRIBEs, say) must not keep it open, nor wait for it to read
        stream = getattr(getattr(self, "writer", None), "_writer", None)
        transport = getattr(stream, "transport", None)
        if transport is not None:
            transport.abort()


class BrokerLimitsMixin:
    """Mixed into the broker: connection count, subscription cap, retained and offline bounds."""

    coplay_limits: BrokerLimits
    coplay_stats: BrokerStats
    _subscriptions: Any

    def coplay_init(
        self, limits: BrokerLimits, pub_filters: Callable[[Any], Sequence[str]]
    ) -> None:
        """Call after ``Broker.__init__``; ``pub_filters(session)``: what it may publish to."""
        self.coplay_limits = limits
        self.coplay_stats = BrokerStats()
        self._coplay_pub_filters = pub_filters
        self._subscriptions = SnapshotDict(self._subscriptions)

    def _admit(self) -> bool:
        if self.coplay_stats.live >= self.coplay_limits.max_connections:
            self.coplay_stats.count("connections_refused")
            return False
        self.coplay_stats.live += 1
        return True

    async def _serve(self, listener: str, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        """amqtt's client loop behind our :class:`PacketReader`; the live count follows it."""
        try:
            await self._client_connected(  # type: ignore[attr-defined]
                listener,
                PacketReader(reader, self.coplay_limits, self.coplay_stats),
                writer,
            )
        finally:
            self.coplay_stats.live -= 1

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        if not self._admit():
            writer.close()
            return
        try:
            await self._serve(
                listener_name, StreamReaderAdapter(reader), StreamWriterAdapter(writer)
            )
        finally:
            writer.close()  # a socket closed before (or refused at) CONNECT is closed here too

    async def ws_connected(self, websocket: Any, listener_name: str) -> None:
        if not self._admit():
            await websocket.close()
            return
        protocol = getattr(websocket, "protocol", None)
        if protocol is not None and hasattr(protocol, "max_size"):
            # websockets buffers a whole message (1 MiB by default) before we see a byte
            protocol.max_size = self.coplay_limits.max_packet_bytes * WS_MESSAGE_PACKETS
        await self._serve(listener_name, WebSocketsReader(websocket), WebSocketsWriter(websocket))

    async def add_subscription(self, subscription: tuple[str, int], session: Any) -> int:
        if getattr(session, "coplay_dropped", False):
            return 0x80  # the rest of a dropped client's queue: refused, not counted
        wanted = subscription[0]
        cid = session.client_id
        held = sum(
            1
            for topic_filter, subscribers in dict.items(self._subscriptions)
            if topic_filter != wanted and any(s.client_id == cid for s, _ in subscribers)
        )
        if held >= self.coplay_limits.max_subscriptions:
            self.coplay_stats.count("subscriptions_refused")
            refused = getattr(session, "coplay_refused_subscriptions", 0) + 1
            session.coplay_refused_subscriptions = refused
            if refused == self.coplay_limits.max_subscriptions + 1:  # none of ours does this
                self.coplay_stats.count("subscription_flood_dropped")
                handler = self._sessions.get(cid, (None, None))[1]  # type: ignore[attr-defined]
                if isinstance(handler, HandlerLimits):
                    handler.coplay_drop("subscription_flood_dropped")
            return 0x80
        return await super().add_subscription(subscription, session)  # type: ignore[misc, no-any-return]

    async def retain_message(
        self, source_session: Any, topic_name: str | None, data: Any, qos: int | None = None
    ) -> None:
        if data:
            filters = self._coplay_pub_filters(source_session) if source_session else None
            if not may_retain(filters, topic_name):
                self.coplay_stats.count("retained_refused")
                return
        await super().retain_message(source_session, topic_name, data, qos)  # type: ignore[misc]

    async def _retain_broadcast_message(
        self, broadcast: dict[str, Any], qos: int, target_session: Any
    ) -> None:
        # amqtt queues every QoS 1 message for an offline persistent session, without end
        if target_session.retained_messages.qsize() >= self.coplay_limits.max_pending_out:
            self.coplay_stats.count("offline_queue_dropped")
            return
        await super()._retain_broadcast_message(broadcast, qos, target_session)  # type: ignore[misc]
