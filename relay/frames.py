"""The wire format: nine frame kinds, each one msgpack array whose first element is the kind.

Frames are ``msgspec.Struct`` classes with ``array_like=True`` and integer tags,
gathered in one tagged union (:data:`Frame`). Value limits live in the types, so
a frame that decodes is a frame that is in range. :class:`FrameCodec` holds the
one reused encoder and decoder; its :meth:`FrameCodec.decode` is the hot-path
entry point and never raises: it returns a frame or a :class:`Drop` reason.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, NamedTuple, TypeAlias

import msgspec
import msgspec.inspect
from msgspec import Meta

MAX_PAYLOAD: Final = 512
PROTO: Final = 1

AXIS_MIN: Final = -32768
AXIS_MAX: Final = 32767
TRIGGER_MAX: Final = 32767

U8 = Annotated[int, Meta(ge=0, le=0xFF)]
U16 = Annotated[int, Meta(ge=0, le=0xFFFF)]
U32 = Annotated[int, Meta(ge=0, le=0xFFFFFFFF)]
Axis = Annotated[int, Meta(ge=AXIS_MIN, le=AXIS_MAX)]
Trigger = Annotated[int, Meta(ge=0, le=TRIGGER_MAX)]
Name = Annotated[str, Meta(max_length=64)]
Reason = Annotated[str, Meta(max_length=128)]


class Button(enum.IntEnum):
    """SDL GameController button numbers; bit ``i`` of ``Input.buttons`` is button ``i``."""

    A = 0
    B = 1
    X = 2
    Y = 3
    BACK = 4
    GUIDE = 5
    START = 6
    LEFTSTICK = 7
    RIGHTSTICK = 8
    LEFTSHOULDER = 9
    RIGHTSHOULDER = 10
    DPAD_UP = 11
    DPAD_DOWN = 12
    DPAD_LEFT = 13
    DPAD_RIGHT = 14
    MISC1 = 15
    PADDLE1 = 16
    PADDLE2 = 17
    PADDLE3 = 18
    PADDLE4 = 19
    TOUCHPAD = 20


ALL_BUTTONS: Final = (1 << (max(Button) + 1)) - 1


def button_mask(*buttons: Button) -> int:
    """The ``buttons`` bit field with exactly these buttons held."""
    mask = 0
    for button in buttons:
        mask |= 1 << button
    return mask


class PadState(NamedTuple):
    """The whole state of one pad, as an Input frame carries it."""

    buttons: int = 0
    lx: int = 0
    ly: int = 0
    rx: int = 0
    ry: int = 0
    lt: int = 0
    rt: int = 0

    @property
    def axes(self) -> tuple[int, int, int, int, int, int]:
        return (self.lx, self.ly, self.rx, self.ry, self.lt, self.rt)


NEUTRAL: Final = PadState()


class Input(msgspec.Struct, array_like=True, tag=1, frozen=True, gc=False):
    """Guest -> host: the whole pad state (any one frame heals a lost one).

    Every field is required. Trailing extra elements are ignored by the decoder,
    so a later protocol may append fields without breaking this one.
    """

    epoch: U32
    seq: U32
    t: U32
    buttons: U32
    lx: Axis
    ly: Axis
    rx: Axis
    ry: Axis
    lt: Trigger
    rt: Trigger

    @property
    def state(self) -> PadState:
        return PadState(self.buttons, self.lx, self.ly, self.rx, self.ry, self.lt, self.rt)

    @classmethod
    def of(cls, epoch: int, seq: int, t: int, state: PadState) -> Input:
        return cls(epoch, seq, t, *state)


class Ping(msgspec.Struct, array_like=True, tag=2, frozen=True, gc=False):
    """Guest -> host: liveness and round-trip probe."""

    epoch: U32
    t: U32


class Pong(msgspec.Struct, array_like=True, tag=3, frozen=True, gc=False):
    """Host -> guest: the Ping's ``t`` echoed, with the guest's seat."""

    epoch: U32
    t: U32
    seat: U8


class Hello(msgspec.Struct, array_like=True, tag=4, frozen=True, gc=False):
    """Guest -> host: asks for a seat."""

    epoch: U32
    proto: U8  # the host answers a proto it does not speak with Reject(PROTOCOL)
    name: Name
    controller: Name


class Welcome(msgspec.Struct, array_like=True, tag=5, frozen=True, gc=False):
    """Host -> guest: you have this seat."""

    epoch: U32
    seat: U8


class Reject(msgspec.Struct, array_like=True, tag=6, frozen=True, gc=False):
    """Host -> guest: no seat for you, and why."""

    epoch: U32
    code: U8
    reason: Reason


class Bye(msgspec.Struct, array_like=True, tag=7, frozen=True, gc=False):
    """Guest -> host: clean leave (also the guest's Last Will)."""

    epoch: U32


class Rumble(msgspec.Struct, array_like=True, tag=8, frozen=True, gc=False):
    """Host -> guest: play this rumble on the real pad."""

    low: U16
    high: U16
    ms: U16


class HostState(msgspec.Struct, array_like=True, tag=9, frozen=True, gc=False):
    """Host -> all, retained: is the host online, and who sits where ("" = free)."""

    online: bool
    seats: list[tuple[U8, Name]]


class RejectCode(enum.IntEnum):
    """``Reject.code`` values."""

    NOT_ALLOWED = 1
    FULL = 2
    PROTOCOL = 3
    SEAT_TAKEN = 4
    REPLACED = 5  # a newer process of the same user took the seat; this epoch is dead


Frame: TypeAlias = Input | Ping | Pong | Hello | Welcome | Reject | Bye | Rumble | HostState
KINDS: Final = {
    cls.__struct_config__.tag: cls
    for cls in (Input, Ping, Pong, Hello, Welcome, Reject, Bye, Rumble, HostState)
}


class Drop(enum.StrEnum):
    """Why a payload was dropped instead of decoded."""

    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    UNKNOWN_KIND = "unknown_kind"
    OUT_OF_RANGE = "out_of_range"


class FrameCodec:
    """One reused msgpack encoder and typed decoder for every frame kind."""

    __slots__ = ("_decoder", "_encoder", "_fields", "_raw")

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Frame] = msgspec.msgpack.Decoder(Frame)
        self._raw = msgspec.msgpack.Decoder()
        self._fields = {tag: _field_types(cls) for tag, cls in KINDS.items()}

    def encode(self, frame: Frame) -> bytes:
        return self._encoder.encode(frame)

    def decode(self, payload: bytes) -> Frame | Drop:
        """The frame in ``payload``, or why it was dropped. Never raises."""
        if len(payload) > MAX_PAYLOAD:
            return Drop.OVERSIZED
        try:
            return self._decoder.decode(payload)
        except msgspec.ValidationError:
            return self._classify(payload)
        except (msgspec.DecodeError, ValueError, TypeError):
            return Drop.MALFORMED

    def _classify(self, payload: bytes) -> Drop:
        """Why valid msgpack is not a frame, judged by the data itself (never by error text).

        A known kind whose fields all have the right msgpack types failed only a
        value limit (a range or a length): OUT_OF_RANGE. Anything else: MALFORMED.
        """
        try:
            raw = self._raw.decode(payload)
        except (msgspec.DecodeError, ValueError, TypeError):
            return Drop.MALFORMED
        # exact types on purpose: msgpack's true is a Python bool, and bool is an int subclass
        if type(raw) is not list or not raw or type(raw[0]) is not int:
            return Drop.MALFORMED
        fields = self._fields.get(raw[0])
        if fields is None:
            return Drop.UNKNOWN_KIND
        values = raw[1:]
        if len(values) < len(fields):
            return Drop.MALFORMED
        if all(_has_shape(value, kind) for value, kind in zip(values, fields, strict=False)):
            return Drop.OUT_OF_RANGE
        return Drop.MALFORMED


def _field_types(cls: type[msgspec.Struct]) -> tuple[msgspec.inspect.Type, ...]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(field.type for field in info.fields)


def _has_shape(value: object, kind: msgspec.inspect.Type) -> bool:
    """``value`` (plain decoded msgpack) has the type ``kind`` asks for, limits aside.

    Exact types (``type(v) is``), not isinstance: a msgpack true must not pass for an int.
    """
    match kind:
        case msgspec.inspect.BoolType():
            return type(value) is bool
        case msgspec.inspect.IntType():
            return type(value) is int
        case msgspec.inspect.StrType():
            return type(value) is str
        case msgspec.inspect.ListType(item_type=item):
            return type(value) is list and all(_has_shape(v, item) for v in value)
        case msgspec.inspect.TupleType(item_types=items):
            return (
                type(value) is list
                and len(value) == len(items)
                and all(_has_shape(v, t) for v, t in zip(value, items, strict=True))
            )
    return False
