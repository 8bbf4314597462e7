"""The ``uinput`` sink: one virtual Xbox 360 pad per seat, through ``/dev/uinput``.

The mapping lives in :mod:`host.sinks.xpad`; this module only does the device
I/O. Pads are created with python-evdev (never searching ``/dev/input`` for
the new node, so a service that may open only ``/dev/uinput`` works), and
events go out as raw ``struct input_event`` records, one ``write(2)`` per
state with its SYN_REPORT. A small thread reads what games send back to each
pad: force-feedback uploads and erases (answered through the
``UI_BEGIN/END_FF_*`` ioctls, with the request id set from the event) and
play/stop events, which :class:`~host.sinks.xpad.RumbleMapper` turns into
Rumble frames for the ``on_rumble(seat, frame)`` given to :meth:`UInputSink.open`.
An exception on that thread (a device error, or one from ``on_rumble``) is
counted in :class:`~host.faults.Faults` and the thread goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
import threading
from collections.abc import Callable
from typing import Any, Final, NamedTuple, Protocol, cast

import structlog

from host.faults import Faults
from host.sinks import xpad
from host.sinks.base import FrameMeta, RumbleCallback
from relay.errors import DeviceError
from relay.frames import NEUTRAL, PadState, Rumble
from relay.logs import Throttle

DEVNODE: Final = "/dev/uinput"
_EVENT = struct.Struct("@llHHi")  # struct input_event: timeval, type, code, value
_SYN: Final = _EVENT.pack(0, 0, xpad.EV_SYN, xpad.SYN_REPORT, 0)


class Upload(NamedTuple):
    """The part of a game's force-feedback upload the mapper needs."""

    effect_id: int
    effect_type: int
    strong: int
    weak: int
    length_ms: int


class Pad(Protocol):
    """One virtual pad device (the evdev one, or a test double)."""

    def fileno(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def read(self) -> bytes:
        """Whatever the kernel has for us (input_event records); b"" when nothing."""
        ...

    def upload(self, request_id: int) -> Upload:
        """Take an FF upload request, answer it with success, and say what it was."""
        ...

    def erase(self, request_id: int) -> int:
        """Take an FF erase request, answer it with success; the erased effect id."""
        ...

    def close(self) -> None: ...


PadFactory = Callable[[int, str], Pad]  # (seat, phys) -> a pad


def uinput_fix(devnode: str = DEVNODE) -> str | None:
    """None when ``devnode`` is usable, else one sentence naming the fix."""
    if not os.path.exists(devnode):
        return (
            f"cannot create a virtual pad: {devnode} does not exist; load the kernel module "
            "with 'sudo modprobe uinput' (install systemd/coplay-uinput.conf into "
            "/etc/modules-load.d/ to load it at boot)"
        )
    if not os.access(devnode, os.R_OK | os.W_OK):
        return (
            f"cannot create a virtual pad: {devnode} is not writable by this user; install "
            "systemd/60-coplay-uinput.rules into /etc/udev/rules.d/, run "
            "'sudo udevadm control --reload && sudo udevadm trigger', and join the coplay "
            "group ('sudo usermod -aG coplay $USER', then log in again)"
        )
    return None


class EvdevPad:
    """A python-evdev UInput device shaped as xpad's Xbox 360 pad."""

    def __init__(self, seat: int, phys: str, devnode: str = DEVNODE) -> None:
        problem = uinput_fix(devnode)
        if problem:
            raise DeviceError(problem)
        try:
            import evdev  # noqa: PLC0415 (optional dependency, Linux only)
            from evdev import ff  # noqa: PLC0415
        except ImportError as exc:
            raise DeviceError(
                "cannot create a virtual pad: python-evdev is not installed; "
                "install it with pip install 'coplay[uinput]'"
            ) from exc

        class _UInput(evdev.UInput):
            def _find_device(self, fd: int) -> None:  # type: ignore[override]
                # python-evdev would open /dev/input/eventN, which a service may not
                return None

        self._ff = ff
        try:
            self._ui: Any = _UInput(
                events=cast(Any, xpad.CAPABILITIES),
                name=xpad.pad_name(seat),
                vendor=xpad.VENDOR,
                product=xpad.PRODUCT,
                version=xpad.VERSION,
                bustype=xpad.BUS_USB,
                devnode=devnode,
                phys=phys,
                max_effects=xpad.MAX_EFFECTS,
            )
        except (OSError, evdev.UInputError) as exc:
            problem = uinput_fix(devnode) or (
                f"cannot create a virtual pad on {devnode} ({exc}); check that this user may "
                "open it (systemd/60-coplay-uinput.rules and the coplay group)"
            )
            raise DeviceError(problem) from exc
        self._fd: int = self._ui.fd

    def fileno(self) -> int:
        return self._fd

    def write(self, data: bytes) -> None:
        os.write(self._fd, data)

    def read(self) -> bytes:
        try:
            return os.read(self._fd, _EVENT.size * 64)
        except BlockingIOError:
            return b""

    def upload(self, request_id: int) -> Upload:
        upload = self._ff.UInputUpload()
        upload.request_id = request_id  # python-evdev's begin_upload leaves it at 0
        if self._ui.dll._uinput_begin_upload(self._fd, ctypes.byref(upload)):
            raise OSError("UI_BEGIN_FF_UPLOAD failed")
        effect = upload.effect
        upload.retval = 0
        self._ui.dll._uinput_end_upload(self._fd, ctypes.byref(upload))
        rumble = effect.u.ff_rumble_effect
        return Upload(
            effect.id,
            effect.type,
            rumble.strong_magnitude,
            rumble.weak_magnitude,
            effect.ff_replay.length,
        )

    def erase(self, request_id: int) -> int:
        erase = self._ff.UInputErase()
        erase.request_id = request_id
        if self._ui.dll._uinput_begin_erase(self._fd, ctypes.byref(erase)):
            raise OSError("UI_BEGIN_FF_ERASE failed")
        effect_id = int(erase.effect_id)
        erase.retval = 0
        self._ui.dll._uinput_end_erase(self._fd, ctypes.byref(erase))
        return effect_id

    def close(self) -> None:
        self._ui.close()


def pack_events(events: list[xpad.Event]) -> bytes:
    """Input events plus SYN_REPORT as the bytes one ``write(2)`` hands to uinput."""
    pack = _EVENT.pack
    return b"".join([pack(0, 0, t, c, v) for t, c, v in events]) + _SYN


def unpack_events(data: bytes) -> list[xpad.Event]:
    usable = len(data) - len(data) % _EVENT.size
    return [(t, c, v) for _, _, t, c, v in _EVENT.iter_unpack(data[:usable])]


class UInputSink:
    """A virtual pad per seat; game rumble goes back to each pad's ``on_rumble``."""

    nonblocking = True  # an O_NONBLOCK fd

    def __init__(
        self,
        rumble_cap_ms: int,
        device_id: str = "host",
        pad_factory: PadFactory = EvdevPad,
        faults: Faults | None = None,
    ) -> None:
        self._faults = faults if faults is not None else Faults()  # default: counted, logged
        self._device_id = device_id  # the host's: each pad's phys derives from it and the seat
        self._cap = rumble_cap_ms
        self._factory = pad_factory
        self._pads: dict[int, Pad] = {}
        self._state: dict[int, PadState] = {}
        self._rumble: dict[int, tuple[xpad.RumbleMapper, RumbleCallback]] = {}
        self._log = structlog.get_logger("host.uinput")
        self._throttle = Throttle(10.0)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, seat: int, on_rumble: RumbleCallback) -> None:
        pad = self._factory(seat, xpad.pad_phys(self._device_id, seat))
        self._pads[seat] = pad
        self._rumble[seat] = (xpad.RumbleMapper(self._cap), on_rumble)
        if self._write(seat, xpad.state_events(NEUTRAL)):
            self._state[seat] = NEUTRAL
        self._log.info("pad_created", seat=seat, name=xpad.pad_name(seat))
        if self._thread is None:
            self._thread = threading.Thread(target=self._ff_loop, name="uinput-ff", daemon=True)
            self._thread.start()
        else:
            os.write(self._wake_w, b"x")  # the reader picks the new pad up

    def _write(self, seat: int, events: list[xpad.Event]) -> bool:
        try:
            self._pads[seat].write(pack_events(events))
        except OSError as exc:
            if self._throttle.allow(f"write{seat}"):
                self._log.warning("pad_write_failed", seat=seat, error=str(exc))
            return False
        return True

    def apply(self, seat: int, state: PadState, meta: FrameMeta) -> None:
        # The pad's state moves on only when the write went through, so the next diff
        # still carries a change that was lost (a release must not stay unsent).
        events = xpad.diff_events(self._state.get(seat), state)
        if events:
            if not self._write(seat, events):
                raise OSError(f"seat {seat}: the virtual pad refused the write")  # counted
            self._state[seat] = state

    def neutral(self, seat: int, reason: str, meta: FrameMeta) -> None:
        self.apply(seat, NEUTRAL, meta)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(2.0)
        for seat, pad in self._pads.items():
            with contextlib.suppress(OSError):
                pad.close()
            self._log.info("pad_closed", seat=seat)
        self._pads.clear()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ------------------------------------------------------------------ force feedback

    def _ff_loop(self) -> None:
        while not self._stop.is_set():
            by_fd = {pad.fileno(): (seat, pad) for seat, pad in list(self._pads.items())}
            try:
                ready, _, _ = select.select([self._wake_r, *by_fd], [], [], 1.0)
            except (OSError, ValueError) as exc:
                if not self._stop.is_set():  # closed under us is stopping; else say so
                    self._faults.record("uinput_ff", exc)
                return
            for fd in ready:
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 64)
                    continue
                seat, pad = by_fd[fd]
                try:
                    self._ff_events(seat, pad, unpack_events(pad.read()))
                except Exception as exc:  # a device error, or on_rumble's: counted, go on
                    self._faults.record("uinput_ff", exc)

    def _ff_events(self, seat: int, pad: Pad, events: list[xpad.Event]) -> None:
        mapper, on_rumble = self._rumble[seat]
        for etype, code, value in events:
            frame: Rumble | None = None
            if etype == xpad.EV_UINPUT and code == xpad.UI_FF_UPLOAD:
                up = pad.upload(value)
                frame = mapper.upload(*up)
            elif etype == xpad.EV_UINPUT and code == xpad.UI_FF_ERASE:
                frame = mapper.erase(pad.erase(value))
            elif etype == xpad.EV_FF:
                frame = mapper.event(code, value)
            if frame is not None:
                on_rumble(seat, frame)
