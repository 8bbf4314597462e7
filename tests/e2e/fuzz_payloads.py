"""Hostile payloads for the host: random bytes, truncated, mutated and oversized frames.

:func:`invalid_payloads` yields payloads that must all be dropped: each
candidate is run through :class:`~relay.frames.FrameCodec` and skipped if it
decodes as any frame at all (a random mutation can land on a valid Input or
Hello, which the host would rightly apply), so the stream holds only payloads
that fail to decode, are out of range, or are over ``MAX_PAYLOAD``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import msgspec

from relay.frames import MAX_PAYLOAD, Bye, Drop, FrameCodec, Hello, Input, Ping

U32 = 0xFFFFFFFF


def _valid_frames(rng: random.Random, codec: FrameCodec) -> list[bytes]:
    """Well-formed guest -> host frames to cut and bend."""
    epoch = rng.getrandbits(32)
    return [
        codec.encode(Input(epoch, 1, 123456, 0, 0, 0, 0, 0, 0, 0)),
        codec.encode(Input(epoch, U32, U32, 0x1FFFFF, -32768, 32767, -1, 1, 32767, 32767)),
        codec.encode(Hello(epoch, 1, "alice", "Xbox Series X Controller")),
        codec.encode(Ping(epoch, 99)),
        codec.encode(Bye(epoch)),
    ]


def _out_of_range(rng: random.Random) -> bytes:
    """An Input/Hello/Ping/Bye array with one field pushed out of its range or type."""
    base: list[object] = [1, rng.getrandbits(32), rng.getrandbits(32), 0, 0, 0, 0, 0, 0, 0, 0]
    choice = rng.randrange(8)
    if choice == 0:  # an axis past int16
        base[rng.randrange(5, 9)] = rng.choice([32768, -32769, 70000, -(2**40)])
    elif choice == 1:  # a trigger below 0 or past 32767
        base[rng.randrange(9, 11)] = rng.choice([-1, 32768, 65535])
    elif choice == 2:  # u32 fields past their range or negative
        base[rng.randrange(1, 5)] = rng.choice([-1, 2**32, 2**63])
    elif choice == 3:  # the wrong type in a field
        base[rng.randrange(1, 11)] = rng.choice(["x", 1.5, None, True, [1], {"a": 1}, b"\x00"])
    elif choice == 4:  # too few fields
        base = base[: rng.randrange(1, 10)]
    elif choice == 5:  # Hello with a wrong protocol version or an over-long name
        base = [4, 1, rng.choice([0, 2, 255]), "alice", "pad"]
        if rng.random() < 0.5:
            base = [4, 1, 1, "a" * rng.randrange(65, 200), "pad"]
    elif choice == 6:  # an unknown kind, or a kind that is not a number
        base = [rng.choice([0, 10, 99, 255, -1, "input", None]), *base[1:]]
    else:  # Ping / Bye with a bad epoch
        base = [rng.choice([2, 7]), rng.choice([-5, 2**33, "e"]), 0][: rng.randrange(2, 4)]
    return msgspec.msgpack.encode(base)


def _candidates(rng: random.Random, valid: list[bytes]) -> Iterator[bytes]:
    makers: list[Callable[[], bytes]] = [
        lambda: rng.randbytes(rng.randrange(0, 48)),
        lambda: (v := rng.choice(valid))[: rng.randrange(0, len(v))],
        lambda: _flip(rng, rng.choice(valid)),
        lambda: _out_of_range(rng),
        lambda: rng.choice(valid) + rng.randbytes(rng.randrange(1, 8)),
    ]
    while True:
        yield rng.choice(makers)()


def _flip(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def oversized(rng: random.Random, count: int) -> list[bytes]:
    """Payloads over MAX_PAYLOAD, some of them a valid frame padded past the limit."""
    codec = FrameCodec()
    hello = codec.encode(Hello(1, 1, "alice", "pad"))
    found = []
    for i in range(count):
        size = rng.randrange(MAX_PAYLOAD + 1, 4 * MAX_PAYLOAD)
        if i % 2:
            found.append(hello + rng.randbytes(size - len(hello)))
        else:
            found.append(rng.randbytes(size))
    return found


def invalid_payloads(count: int, seed: int = 2024) -> tuple[list[bytes], int]:
    """``count`` payloads no frame decoder accepts, and how many candidates were skipped."""
    rng = random.Random(seed)
    codec = FrameCodec()
    valid = _valid_frames(rng, codec)
    found: list[bytes] = []
    skipped = 0
    for payload in _candidates(rng, valid):
        if len(found) >= count:
            break
        if isinstance(codec.decode(payload), Drop):
            found.append(payload)
        else:
            skipped += 1
    return found, skipped
