"""What wakes the guest's loop: a pad's device node, a pipe, and the wait on them.

SDL has no blocking wait for joystick input without a window, so reading a pad
would mean pumping SDL on a timer. On Linux the kernel tells us instead: every
open of an evdev node (``/dev/input/eventN``, the path SDL reports with
``SDL_JoystickPathForIndex``) gets its own copy of the device's events, so a
descriptor of our own on the node the pad's SDL joystick reads becomes readable
at the instant the pad changes, and stays quiet while it rests.

- :class:`NodeWaker` opens such a node read-only and non-blocking. Draining it
  only throws our copy of the events away: SDL reads its own descriptor when it
  is pumped. A node that goes away (the pad unplugged) reports so from
  :meth:`NodeWaker.drain`, and is closed.
- :class:`PipeWaker` is a pipe a thread of ours writes one byte to: the link's
  thread when something arrived that the loop must act on (a Rumble, a
  reconnect), or the virtual pad on every change, the way the kernel makes a
  node readable.
- :class:`Waiter` waits on any of them with ``select(2)`` up to a deadline.

Drain first, then pump SDL: a change that lands after the drain makes the
descriptor readable again, so none is missed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sys
import threading
from collections.abc import Iterable
from typing import Final, Protocol

# select(2) on pipes and device nodes: POSIX only (Windows selects sockets alone), so
# elsewhere the guest polls the pad on a timer as it always did.
WAKE_SUPPORTED: Final = os.name == "posix"
DRAIN_CHUNK: Final = 4096  # bytes read per call while draining (170 evdev events)
MAX_DRAIN_READS: Final = 64  # a node that never runs dry cannot hold the loop in drain


class Waker(Protocol):
    """A descriptor that becomes readable when there is something to look at."""

    def fileno(self) -> int: ...

    def drain(self) -> bool:
        """Take what is pending; False once the descriptor is gone for good."""
        ...

    def close(self) -> None: ...


class PipeWaker:
    """A pipe that :meth:`poke` makes readable (from any thread, also a signal handler)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def poke(self) -> None:
        """Wake whoever waits (a full pipe is already readable: the byte is not needed)."""
        if self._closed:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"!")

    def drain(self) -> bool:
        if self._closed:
            return False
        for _ in range(MAX_DRAIN_READS):
            try:
                if len(os.read(self._read, DRAIN_CHUNK)) < DRAIN_CHUNK:
                    break
            except BlockingIOError:
                break
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class NodeWaker:
    """Our own read-only descriptor on a pad's device node (``/dev/input/eventN``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(path, flags)

    def fileno(self) -> int:
        return -1 if self._fd is None else self._fd

    def drain(self) -> bool:
        fd = self._fd
        if fd is None:
            return False
        for _ in range(MAX_DRAIN_READS):
            try:
                data = os.read(fd, DRAIN_CHUNK)
            except BlockingIOError:
                return True
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    return True
                self.close()  # ENODEV: the pad is gone; SDL reports the removal itself
                return False
            if not data:  # end of file: the node went away
                self.close()
                return False
        return True

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def node_waker(path: str | None) -> NodeWaker | None:
    """A NodeWaker on ``path`` if it is a device node we may open (Linux), else None."""
    if not path or not sys.platform.startswith("linux") or not path.startswith("/dev/"):
        return None
    try:
        return NodeWaker(path)
    except OSError:
        return None  # no permission (hidraw nodes often), or gone already: poll instead


class Waiter:
    """Waits until one of some descriptors is readable, or a timeout passes.

    ``select(2)``, not ``poll(2)``: it takes the timeout in microseconds (poll
    rounds to whole milliseconds, which would make a 2 ms gap 3), and the set
    is one to three descriptors.
    """

    def __init__(self) -> None:
        self._fds: list[int] = []

    def watch(self, fds: Iterable[int]) -> None:
        """Watch exactly ``fds`` (those < 0 are left out)."""
        self._fds = [fd for fd in fds if fd >= 0]

    @property
    def watching(self) -> bool:
        return bool(self._fds)

    def wait(self, timeout_s: float) -> list[int]:
        """The descriptors readable (or failed) within ``timeout_s``; [] when it timed out."""
        try:
            readable, _, failed = select.select(self._fds, [], self._fds, max(0.0, timeout_s))
        except (OSError, ValueError):  # a descriptor was closed under us: look at all now
            return list(self._fds)
        return readable + failed if failed else readable


class Listeners:
    """The pipes a virtual pad pokes on every change (one per reader, as evdev has)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipes: list[_Listener] = []

    def listen(self) -> Waker:
        listener = _Listener(self)
        with self._lock:
            self._pipes = [*self._pipes, listener]
        return listener

    def poke(self) -> None:
        for pipe in self._pipes:  # a copy is not needed: the list is replaced, not mutated
            pipe.poke()

    def _remove(self, listener: _Listener) -> None:
        with self._lock:
            self._pipes = [p for p in self._pipes if p is not listener]


class _Listener(PipeWaker):
    def __init__(self, owner: Listeners) -> None:
        super().__init__()
        self._owner = owner

    def close(self) -> None:
        self._owner._remove(self)
        super().close()
