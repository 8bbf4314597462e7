"""100k hostile payloads at a real host through Mosquitto: it keeps running and no pad moves."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from relay.frames import FrameCodec, Input, PadState
from relay.topics import Topics
from tests.e2e.fuzz_payloads import invalid_payloads, oversized
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient
from tests.support.stack import Stack

FUZZ_COUNT = 100_000
OVERSIZED_COUNT = 50
CHUNK = 2500
IN_FLIGHT = 7500
CODEC = FrameCodec()


def test_fuzzed_payloads_change_no_pad_and_a_real_input_still_applies(
    stack: Stack, mosquitto: Mosquitto, mqtt_client: Callable[..., RawClient]
) -> None:
    """Rule 1: garbage, out-of-range, oversized and retained frames are dropped and counted."""
    payloads, skipped = invalid_payloads(FUZZ_COUNT)
    big = oversized(random.Random(7), OVERSIZED_COUNT)
    topics = Topics(stack.prefix, "s1")
    alice = mqtt_client("alice")
    alice.wait_connected()
    # A valid Input, retained before the host subscribes: it arrives flagged retained.
    held = Input.of(7, 1, 0, PadState(buttons=1))
    alice.publish(topics.input("alice"), CODEC.encode(held), 1, True)

    host = stack.host(mosquitto, status_interval_s=0.2)
    host.wait_ready()
    host.wait_log("frame_dropped", lambda x: x.get("reason") == "retained")

    # QoS 0 as fast as the host drains it: at most IN_FLIGHT payloads ahead of its
    # drop counters, so a loaded machine never builds a backlog that would hold the
    # host's PINGRESP back past its keep-alive (and cost it the connection).
    started = time.monotonic()
    stream = [*payloads, *big]
    for first in range(0, len(stream), CHUNK):
        host.wait_drops_total(1 + first - IN_FLIGHT)  # 1: the retained Input
        for payload in stream[first : first + CHUNK]:
            alice.client.publish(topics.input("alice"), payload, 0)
    # QoS 1 after the QoS 0 burst: acked only once the broker has taken all before it.
    real = Input.of(4242, 1, 0, PadState(buttons=0b1010, lx=1000))
    alice.publish(topics.input("alice"), CODEC.encode(real), 1)
    published_s = time.monotonic() - started

    applied = host.wait_lines("input", timeout=40.0)
    assert host.alive()
    lines = host.lines()
    assert lines == applied, f"a fuzzed payload changed a pad: {lines[:3]}"
    assert [(x["user"], x["epoch"], x["seq"], x["buttons"]) for x in lines] == [
        ("alice", 4242, 1, 0b1010)
    ]
    assert lines[0]["axes"][0] == 1000

    alice.publish(topics.input("alice"), b"", 1, True)  # clear the retained message
    assert host.stop() == 0
    drops = host.wait_log("host_stopped")["drops"]
    sent = len(payloads) + len(big) + 2  # + the retained Input + the empty clearing message
    assert drops.get("oversized", 0) == OVERSIZED_COUNT
    assert drops.get("retained", 0) == 1
    accounted = sum(drops.values())
    assert accounted == sent, f"drops {drops} account for {accounted} of {sent} ({skipped} skipped)"
    assert host.count_log("link_connected") == 1
    print(f"{len(stream)} payloads published in {published_s:.1f}s; host drops {drops}")
