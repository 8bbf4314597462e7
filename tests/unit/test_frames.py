"""The wire format: round trips, drop reasons, golden bytes, size budget and button bits."""

from __future__ import annotations

import os
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from relay.config import MAX_SEATS
from relay.frames import (
    ALL_BUTTONS,
    AXIS_MAX,
    AXIS_MIN,
    KINDS,
    MAX_PAYLOAD,
    NEUTRAL,
    PROTO,
    TRIGGER_MAX,
    Button,
    Bye,
    Drop,
    Frame,
    FrameCodec,
    Hello,
    HostState,
    Input,
    PadState,
    Ping,
    Pong,
    Reject,
    RejectCode,
    Rumble,
    Welcome,
    button_mask,
)

U32_MAX = 0xFFFFFFFF
TAGS = list(range(1, 10))  # the nine kinds of DESIGN
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, U32_MAX)
axis = st.integers(AXIS_MIN, AXIS_MAX)
trigger = st.integers(0, TRIGGER_MAX)
# str<=64 / <=128 count characters; the round trip below covers any text, the
# size tests below pin what fits in MAX_PAYLOAD.
name = st.text(max_size=64)
reason = st.text(max_size=128)

inputs = st.builds(Input, u32, u32, u32, u32, axis, axis, axis, axis, trigger, trigger)
FRAMES: dict[type[Any], st.SearchStrategy[Any]] = {
    Input: inputs,
    Ping: st.builds(Ping, u32, u32),
    Pong: st.builds(Pong, u32, u32, u8),
    Hello: st.builds(Hello, u32, st.just(PROTO), name, name),
    Welcome: st.builds(Welcome, u32, u8),
    Reject: st.builds(Reject, u32, u8, reason),
    Bye: st.builds(Bye, u32),
    Rumble: st.builds(Rumble, u16, u16, u16),
    HostState: st.builds(
        HostState, st.booleans(), st.lists(st.tuples(u8, name), max_size=MAX_SEATS)
    ),
}
frames = st.one_of(*FRAMES.values())


CODEC = FrameCodec()  # one codec for the module, as the hot path reuses one
enc = msgspec.msgpack.encode


def decode(payload: bytes) -> Frame | Drop:
    return CODEC.decode(payload)


# ---------------------------------------------------------------- round trips


def test_every_kind_has_a_strategy() -> None:
    """The round-trip property below covers all nine kinds, numbered 1..9."""
    assert set(KINDS) == set(TAGS)
    assert set(KINDS.values()) == set(FRAMES)


@SETTINGS
@given(frames)
def test_every_frame_round_trips(frame: Frame) -> None:
    """Any in-range frame decodes to an equal frame (or is oversized, never garbled)."""
    payload = CODEC.encode(frame)
    result = decode(payload)
    if len(payload) > MAX_PAYLOAD:  # only text of 4-byte characters gets here
        assert result is Drop.OVERSIZED
    else:
        assert result == frame
        assert type(result) is type(frame)


@pytest.mark.parametrize("kind", list(FRAMES), ids=lambda k: k.__name__)
@SETTINGS
@given(data=st.data())
def test_each_kind_round_trips(kind: type[Any], data: st.DataObject) -> None:
    """Each kind on its own, so a failure names the kind."""
    frame = data.draw(FRAMES[kind])
    payload = CODEC.encode(frame)
    if len(payload) <= MAX_PAYLOAD:
        assert decode(payload) == frame


@SETTINGS
@given(inputs)
def test_input_encodes_within_40_bytes(frame: Input) -> None:
    assert len(CODEC.encode(frame)) <= 40


# ---------------------------------------------------------------- never raises


@SETTINGS
@given(st.binary(max_size=600))
@example(b"")
@example(b"\xc1")  # never used in msgpack
@example(b"\x91" * 511 + b"\x00")  # deep nesting
@example(b"\x92\x0a" + b"\x91" * 509 + b"\x00")
@example(b"\xdd\xff\xff\xff\xff")  # array header claiming 4 G elements
@example(b"\x93\x02\x01\x02\x00")  # a valid Ping plus a trailing byte
def test_random_bytes_are_a_frame_or_a_drop(payload: bytes) -> None:
    result = decode(payload)
    assert isinstance(result, (Drop, *FRAMES))
    if len(payload) > MAX_PAYLOAD:
        assert result is Drop.OVERSIZED


@SETTINGS
@given(st.integers(0, 15), st.binary(max_size=40))
def test_array_shaped_noise_is_a_frame_or_a_drop(n: int, tail: bytes) -> None:
    """Bytes that start like a frame (fixarray + kind) get deeper into the decoder."""
    for kind in range(12):
        result = decode(bytes([0x90 | n, kind]) + tail)
        assert isinstance(result, (Drop, *FRAMES))


@SETTINGS
@given(frames, st.data())
def test_truncations_are_malformed(frame: Frame, data: st.DataObject) -> None:
    """Every proper prefix of a valid encoding is dropped as malformed."""
    payload = CODEC.encode(frame)
    cut = data.draw(st.integers(0, len(payload) - 1))
    assert decode(payload[:cut]) is Drop.MALFORMED


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.integers(-(2**63), 2**64 - 1),
            st.text(max_size=8),
            st.booleans(),
            st.none(),
            st.floats(allow_nan=False),
            st.binary(max_size=4),
            st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3),
        ),
        max_size=12,
    )
)
def test_random_arrays_are_a_frame_or_a_drop(items: list[Any]) -> None:
    result = decode(enc(items))
    assert isinstance(result, (Drop, *FRAMES))


def test_oversized_is_checked_before_decoding() -> None:
    """A payload over 512 bytes is dropped as oversized even if it is a valid frame."""
    big = CODEC.encode(Reject(1, 1, "x" * 128)) + b"\x00" * 400
    assert len(big) > MAX_PAYLOAD
    assert decode(big) is Drop.OVERSIZED
    assert decode(b"\x00" * (MAX_PAYLOAD + 1)) is Drop.OVERSIZED
    assert decode(enc([10, "x" * 600])) is Drop.OVERSIZED


def test_the_limit_is_inclusive() -> None:
    """512 bytes are decoded, 513 are not (extra trailing elements pad a Bye to size)."""
    short = enc([7, 1, "y" * 300])
    exact = enc([7, 1, "y" * (300 + MAX_PAYLOAD - len(short))])
    assert len(exact) == MAX_PAYLOAD
    assert decode(exact) == Bye(1)
    over = enc([7, 1, "y" * (301 + MAX_PAYLOAD - len(short))])
    assert len(over) == MAX_PAYLOAD + 1
    assert decode(over) is Drop.OVERSIZED


# ---------------------------------------------------------------- drop reasons

INPUT_OK = [1, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0]
INPUT_FIELDS = ["epoch", "seq", "t", "buttons", "lx", "ly", "rx", "ry", "lt", "rt"]
LIMITS = {
    "epoch": (0, U32_MAX),
    "seq": (0, U32_MAX),
    "t": (0, U32_MAX),
    "buttons": (0, U32_MAX),
    "lx": (AXIS_MIN, AXIS_MAX),
    "ly": (AXIS_MIN, AXIS_MAX),
    "rx": (AXIS_MIN, AXIS_MAX),
    "ry": (AXIS_MIN, AXIS_MAX),
    "lt": (0, TRIGGER_MAX),
    "rt": (0, TRIGGER_MAX),
}


def with_field(base: list[Any], index: int, value: Any) -> bytes:
    items = list(base)
    items[index] = value
    return enc(items)


@pytest.mark.parametrize("field", INPUT_FIELDS)
def test_input_limits_are_inclusive(field: str) -> None:
    """Each Input field takes exactly its range: both ends in, one past either end out."""
    lo, hi = LIMITS[field]
    i = 1 + INPUT_FIELDS.index(field)
    assert isinstance(decode(with_field(INPUT_OK, i, lo)), Input)
    assert isinstance(decode(with_field(INPUT_OK, i, hi)), Input)
    assert decode(with_field(INPUT_OK, i, lo - 1)) is Drop.OUT_OF_RANGE
    assert decode(with_field(INPUT_OK, i, hi + 1)) is Drop.OUT_OF_RANGE


# (kind's valid array, field index, value just outside the limit)
OUT_OF_RANGE: dict[str, tuple[list[Any], int, Any]] = {
    "ping.epoch": ([2, 0, 0], 1, U32_MAX + 1),
    "ping.t": ([2, 0, 0], 2, -1),
    "pong.seat": ([3, 0, 0, 2], 3, 256),
    "pong.seat_negative": ([3, 0, 0, 2], 3, -1),
    "hello.proto_256": ([4, 0, 1, "n", "c"], 2, 256),
    "hello.name_65": ([4, 0, 1, "n", "c"], 3, "n" * 65),
    "hello.controller_65": ([4, 0, 1, "n", "c"], 4, "c" * 65),
    "welcome.seat": ([5, 0, 2], 2, 256),
    "welcome.epoch": ([5, 0, 2], 1, -1),
    "reject.code": ([6, 0, 1, "r"], 2, 256),
    "reject.reason_129": ([6, 0, 1, "r"], 3, "r" * 129),
    "bye.epoch": ([7, 0], 1, U32_MAX + 1),
    "bye.epoch_u64": ([7, 0], 1, 2**64 - 1),
    "rumble.low": ([8, 0, 0, 0], 1, 0x10000),
    "rumble.high": ([8, 0, 0, 0], 2, -1),
    "rumble.ms": ([8, 0, 0, 0], 3, 0x10000),
    "hoststate.seat": ([9, True, [[2, ""]]], 2, [[256, "a"]]),
    "hoststate.name_65": ([9, True, [[2, ""]]], 2, [[2, "a" * 65]]),
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_out_of_range_values_are_dropped_as_out_of_range(case: str) -> None:
    base, index, value = OUT_OF_RANGE[case]
    assert not isinstance(decode(enc(base)), Drop)  # the base is valid
    assert decode(with_field(base, index, value)) is Drop.OUT_OF_RANGE


WRONG_TYPES: dict[str, tuple[list[Any], int, Any]] = {
    "epoch_str": (INPUT_OK, 1, "1"),
    "epoch_float": (INPUT_OK, 1, 1.0),
    "epoch_bool": (INPUT_OK, 1, True),
    "epoch_nil": (INPUT_OK, 1, None),
    "axis_bytes": (INPUT_OK, 5, b"\x00"),
    "axis_list": (INPUT_OK, 5, [0]),
    "hello_name_int": ([4, 0, 1, "n", "c"], 3, 5),
    "hoststate_online_int": ([9, True, []], 1, 1),
    "hoststate_seats_map": ([9, True, []], 2, {"2": "a"}),
    "hoststate_pair_short": ([9, True, []], 2, [[2]]),
    "hoststate_pair_long": ([9, True, []], 2, [[2, "a", "b"]]),
    "hoststate_pair_str_seat": ([9, True, []], 2, [["2", "a"]]),
}


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_wrong_types_are_malformed(case: str) -> None:
    base, index, value = WRONG_TYPES[case]
    assert decode(with_field(base, index, value)) is Drop.MALFORMED


@pytest.mark.parametrize("kind", TAGS)
def test_arrays_one_short_are_malformed(kind: int) -> None:
    """A frame missing its last field is malformed, for every kind."""
    frame = CODEC.encode(_sample(kind))
    items = msgspec.msgpack.decode(frame)
    assert decode(enc(items[:-1])) is Drop.MALFORMED


@pytest.mark.parametrize("kind", TAGS)
def test_trailing_fields_are_ignored_so_the_format_can_grow(kind: int) -> None:
    """Extra elements after the known fields decode as the known frame (forward compatible)."""
    frame = _sample(kind)
    items = msgspec.msgpack.decode(CODEC.encode(frame))
    assert decode(enc([*items, 1, "later"])) == frame


@pytest.mark.parametrize(
    "payload",
    [[0], [10], [10, 1, 2], [255, "x"], [-1], [2**64 - 1], [-(2**63)], [100, [1, 2]]],
    ids=repr,
)
def test_unknown_kinds_are_dropped_as_unknown_kind(payload: list[Any]) -> None:
    assert decode(enc(payload)) is Drop.UNKNOWN_KIND


@pytest.mark.parametrize(
    "payload",
    [[], ["1"], [True, 0], [None], [1.0, 0], {"kind": 1}, 1, "Input", None, b"\x01"],
    ids=repr,
)
def test_not_a_tagged_array_is_malformed(payload: Any) -> None:
    assert decode(enc(payload)) is Drop.MALFORMED


@SETTINGS
@given(st.integers(10, 2**32), st.lists(st.integers(0, 100), max_size=10))
def test_any_unknown_kind_is_unknown_kind(kind: int, rest: list[int]) -> None:
    assert decode(enc([kind, *rest])) is Drop.UNKNOWN_KIND


def test_drop_reasons_are_the_documented_strings() -> None:
    assert {d.value for d in Drop} >= {"oversized", "malformed", "unknown_kind", "out_of_range"}


# ---------------------------------------------------------------- golden bytes

GOLDEN: list[tuple[Frame, str]] = [
    (
        Input(
            0x01020304,
            5,
            0xDEADBEEF,
            button_mask(Button.A, Button.START),
            AXIS_MIN,
            AXIS_MAX,
            -1,
            128,
            0,
            TRIGGER_MAX,
        ),
        # fixarray(11) 1 u32 5 u32 0x41 int16 uint16 -1 uint8 0 uint16
        "9b 01 ce01020304 05 cedeadbeef 41 d18000 cd7fff ff cc80 00 cd7fff",
    ),
    (Ping(70000, 0x7F), "93 02 ce00011170 7f"),
    (Pong(0xFFFFFFFF, 300, 2), "94 03 ceffffffff cd012c 02"),
    (Hello(42, 1, "alice", "Xbox"), "95 04 2a 01 a5616c696365 a458626f78"),
    (Welcome(42, 2), "93 05 2a 02"),
    (Reject(42, RejectCode.FULL, "full"), "94 06 2a 02 a466756c6c"),
    (Bye(0x10000), "92 07 ce00010000"),
    (Rumble(0xFFFF, 0x8000, 250), "94 08 cdffff cd8000 ccfa"),
    (HostState(True, [(2, "alice"), (3, "")]), "93 09 c3 92 9202a5616c696365 9203a0"),
]


@pytest.mark.parametrize(("frame", "hex_bytes"), GOLDEN, ids=lambda v: type(v).__name__)
def test_golden_bytes(frame: Frame, hex_bytes: str) -> None:
    """One fixed frame of each kind encodes to exactly these bytes, and back."""
    expected = bytes.fromhex(hex_bytes.replace(" ", ""))
    assert CODEC.encode(frame).hex() == expected.hex()
    assert decode(expected) == frame


def test_golden_covers_every_kind() -> None:
    assert [type(frame).__struct_config__.tag for frame, _ in GOLDEN] == TAGS


# ---------------------------------------------------------------- sizes


def test_neutral_input_fits_in_24_bytes() -> None:
    frame = Input.of(U32_MAX, U32_MAX, U32_MAX, NEUTRAL)
    assert len(CODEC.encode(frame)) <= 24


def test_busiest_input_fits_in_40_bytes() -> None:
    busiest = Input(
        U32_MAX, U32_MAX, U32_MAX, U32_MAX, AXIS_MIN, AXIS_MIN, AXIS_MIN, AXIS_MIN, 32767, 32767
    )
    assert len(CODEC.encode(busiest)) <= 40
    assert decode(CODEC.encode(busiest)) == busiest


def test_largest_text_frames_fit_in_the_payload_limit() -> None:
    """Hello and Reject at their length limits in any BMP text, and the busiest HostState."""
    wide = "\uffff"  # three bytes in UTF-8
    for frame in (
        Hello(U32_MAX, PROTO, wide * 64, wide * 64),
        Reject(U32_MAX, 255, wide * 128),
        HostState(True, [(255, "u" * 64)] * MAX_SEATS),
    ):
        payload = CODEC.encode(frame)
        assert len(payload) <= MAX_PAYLOAD, type(frame).__name__
        assert decode(payload) == frame


# ---------------------------------------------------------------- buttons and pad state

SDL_ORDER = [
    "A",
    "B",
    "X",
    "Y",
    "BACK",
    "GUIDE",
    "START",
    "LEFTSTICK",
    "RIGHTSTICK",
    "LEFTSHOULDER",
    "RIGHTSHOULDER",
    "DPAD_UP",
    "DPAD_DOWN",
    "DPAD_LEFT",
    "DPAD_RIGHT",
    "MISC1",
    "PADDLE1",
    "PADDLE2",
    "PADDLE3",
    "PADDLE4",
    "TOUCHPAD",
]


def test_button_bits_follow_sdl_numbering() -> None:
    assert [(b.name, b.value) for b in Button] == [(n, i) for i, n in enumerate(SDL_ORDER)]
    assert button_mask(Button.A) == 1
    assert button_mask(Button.TOUCHPAD) == 1 << 20
    assert button_mask(Button.A, Button.B, Button.A) == 0b11
    assert button_mask() == 0
    assert button_mask(*Button) == ALL_BUTTONS == (1 << 21) - 1


def test_button_bits_match_pygames_sdl_constants() -> None:
    """Cross-check against the SDL GameController constants the guest reads through."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    pygame = pytest.importorskip("pygame")
    for button in Button:
        constant = getattr(pygame, f"CONTROLLER_BUTTON_{button.name}", None)
        if constant is not None:  # pygame names A..DPAD_RIGHT
            assert constant == button.value, button.name
    assert len(Button) == pygame.CONTROLLER_BUTTON_MAX


def test_pad_state_and_input_agree() -> None:
    state = PadState(button_mask(Button.Y), 1, -2, 3, -4, 5, 6)
    frame = Input.of(9, 10, 11, state)
    assert frame.state == state
    assert state.axes == (1, -2, 3, -4, 5, 6)
    assert PadState(0, 0, 0, 0, 0, 0, 0) == NEUTRAL
    assert Input.of(1, 2, 3, NEUTRAL).state == NEUTRAL


def test_a_fresh_codec_agrees_with_a_used_one() -> None:
    codec = FrameCodec()
    for frame, _ in GOLDEN:
        assert codec.encode(frame) == CODEC.encode(frame)
        assert codec.decode(codec.encode(frame)) == frame


def _sample(kind: int) -> Frame:
    """The golden frame of this kind (GOLDEN is in kind order)."""
    frame = GOLDEN[kind - 1][0]
    assert type(frame).__struct_config__.tag == kind
    return frame


@pytest.mark.parametrize("proto", [0, 2, 255])
def test_hello_with_another_proto_decodes_so_the_host_can_answer_it(proto: int) -> None:
    """A Hello of a protocol this side does not speak is still a Hello (rule 3 answers it)."""
    assert decode(enc([4, 9, proto, "n", "c"])) == Hello(9, proto, "n", "c")
