"""The broker bounds' pure parts: the subscription table's snapshot iteration, the log throttle's
fixed size, the packet reader's framing, and which topics may be retained."""

from __future__ import annotations

import asyncio

import pytest
from amqtt.errors import NoDataError

from relay.logs import Throttle
from relay.service.amqtt_hooks import SnapshotDict
from relay.service.limits import (
    BrokerLimits,
    BrokerStats,
    ConnectRefused,
    LimitExceeded,
    PacketReader,
    may_retain,
)
from relay.topics import acl
from tests.support import mqtt_raw


def test_a_subscribe_during_delivery_does_not_break_the_walk() -> None:
    """Adding a filter while the table is walked (amqtt awaits inside the walk) is safe."""
    table = SnapshotDict({"a/#": [("s1", 0)], "b/+": [("s2", 1)]})
    seen = []
    for key, subscribers in table.items():
        table[f"new/{key}"] = [("s3", 0)]  # a plain dict: RuntimeError: changed size
        subscribers.append(("late", 0))
        seen.append(key)
    for key in table:
        table.pop("nothing", None)
        table[f"more/{key}"] = []
    assert seen == ["a/#", "b/+"]
    assert table["a/#"] == [("s1", 0)]


def test_the_log_throttle_keeps_a_bounded_number_of_keys() -> None:
    now = [0.0]
    throttle = Throttle(5.0, clock=lambda: now[0], max_keys=8)
    for i in range(10_000):
        throttle.allow(f"attacker-chosen-{i}")
        throttle.allow(f"attacker-chosen-{i}")
    assert len(throttle._last) <= 8 and len(throttle.suppressed) <= 8
    assert throttle.allow("fixed")
    assert not throttle.allow("fixed")


class _Bytes:
    """A reader adapter over fixed bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int = -1) -> bytes:
        n = len(self._data) if n < 0 else n
        chunk, self._data = self._data[:n], self._data[n:]
        if len(chunk) < n:
            raise asyncio.IncompleteReadError(chunk, n)
        return chunk

    def feed_eof(self) -> None:
        pass


def _reader(data: bytes, **limits: int) -> tuple[PacketReader, BrokerStats]:
    stats = BrokerStats()
    return PacketReader(_Bytes(data), BrokerLimits(**limits), stats, clock=lambda: 0.0), stats


def test_the_packet_reader_serves_packets_and_refuses_an_oversized_one_before_its_body() -> None:
    ok = mqtt_raw.connect("c", "u", "p")
    big = bytes([0x30]) + mqtt_raw.remaining_length(100_000)  # no body at all: never read
    reader, stats = _reader(ok + big, max_packet_bytes=4096)

    async def go() -> None:
        assert await reader.read(1) == ok[:1]
        assert await reader.read(len(ok) - 1) == ok[1:]
        with pytest.raises(LimitExceeded):
            await reader.read(1)

    asyncio.run(go())
    assert stats.counts["oversized_packets"] == 1


def test_a_connect_that_is_too_big_or_cut_short_is_refused_and_counted() -> None:
    big, stats = _reader(mqtt_raw.connect("c", "u" * 10_000, "p"), max_packet_bytes=4096)
    cut, cut_stats = _reader(mqtt_raw.connect("c", "u", "p")[:5])
    with pytest.raises(ConnectRefused):
        asyncio.run(big.read(1))
    with pytest.raises(NoDataError):
        asyncio.run(cut.read(1))
    assert stats.counts["oversized_packets"] == 1
    assert cut_stats.counts["closed_before_connect"] == 1


def test_publishes_over_the_rate_drop_the_client() -> None:
    frames = mqtt_raw.connect("c", "u", "p") + mqtt_raw.publish("t", b"x") * 20
    reader, stats = _reader(frames, max_publish_per_s=10)

    async def go() -> int:
        packets = 0
        with pytest.raises(LimitExceeded):
            while True:
                await reader.read(-1)
                packets += 1
        return packets

    assert asyncio.run(go()) == 1 + 10  # the CONNECT and one second's worth
    assert stats.counts["publish_rate_dropped"] == 1


def test_only_a_hosts_own_host_topic_is_retained() -> None:
    host = acl("host", "streamer", "coplay").pub
    pinned = acl("host", "streamer", "p/q", session="s1").pub
    guest = acl("guest", "host", "coplay").pub  # a user named "host"
    assert may_retain(host, "coplay/s1/host")
    assert may_retain(pinned, "p/q/s1/host")
    assert not may_retain(pinned, "p/q/s2/host")
    assert not may_retain(host, "coplay/s1/out/alice")
    assert not may_retain(guest, "coplay/s1/in/host")
    assert not may_retain(None, "coplay/s1/host")


def test_the_relay_unit_opens_enough_files_for_the_default_connection_limit() -> None:
    from pathlib import Path

    from relay.service.config import ServerSection
    from relay.service.limits import FILES_BESIDES_CLIENTS

    unit = Path(__file__).resolve().parents[2] / "systemd" / "coplay-relay.service"
    limits = [
        int(line.split("=", 1)[1])
        for line in unit.read_text().splitlines()
        if line.startswith("LimitNOFILE=")
    ]
    assert limits and limits[0] >= ServerSection().max_connections + FILES_BESIDES_CLIENTS
