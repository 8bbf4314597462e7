"""Child processes on loopback: free ports for them, waiting for them to listen, stopping them.

What the demo (:mod:`relay.demo`) and the test suite share to run relays, hosts,
guests and brokers as real processes on 127.0.0.1.

Ports come from below the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``): the kernel never picks such a port
for an outgoing connection, so a port that was free when :func:`free_port`
checked it is not taken by some client's connect() before the child binds it.
Parallel test workers (pytest-xdist's ``PYTEST_XDIST_WORKER=gwN`` of
``PYTEST_XDIST_WORKER_COUNT``) each draw from a disjoint slice of that pool, and
one process never hands out the same port twice until its slice wraps around.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

LOOPBACK = "127.0.0.1"
PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL = (32768, 60999)  # Linux's default, when the file cannot be read
POOL_SIZE = 20000  # ports per machine-wide pool, split between the workers
MIN_POOL = 1000
FIRST_UNPRIVILEGED = 1024


def ephemeral_range(path: Path = PORT_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports: (low, high), inclusive."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def port_pool(ephemeral: tuple[int, int]) -> range:
    """Ports outside the ephemeral range: just below it, else above it."""
    low, high = ephemeral
    below = range(max(FIRST_UNPRIVILEGED, low - POOL_SIZE), low)
    above = range(high + 1, min(65536, high + 1 + POOL_SIZE))
    pool = below if len(below) >= len(above) else above
    if len(pool) < MIN_POOL:
        raise RuntimeError(f"no room outside the ephemeral port range {low}-{high}")
    return pool


def worker_slice(pool: range, env: Mapping[str, str]) -> range:
    """This process's share of ``pool``: one of ``PYTEST_XDIST_WORKER_COUNT`` equal slices."""
    worker = env.get("PYTEST_XDIST_WORKER", "")
    count = int(env.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if count <= 1:
        return pool
    size = len(pool) // count
    return pool[index % count * size : (index % count + 1) * size]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a listener could bind ``host:port`` now (no SO_REUSEADDR: TIME_WAIT is busy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                return False
            raise
    return True


class PortAllocator:
    """Hands out bind-checked ports from one slice, each once per lap around the slice."""

    def __init__(self, ports: range, start: int | None = None) -> None:
        self._ports = ports
        self._next = random.randrange(len(ports)) if start is None else start
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            for _ in range(len(self._ports)):
                port = self._ports[self._next % len(self._ports)]
                self._next += 1
                if port_is_free(port):
                    return port
        raise RuntimeError(f"no free port in {self._ports.start}-{self._ports.stop - 1}")


_allocator: PortAllocator | None = None
_allocator_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a child process to bind."""
    global _allocator  # noqa: PLW0603 (one allocator per process, made on first use)
    with _allocator_lock:
        if _allocator is None:
            _allocator = PortAllocator(worker_slice(port_pool(ephemeral_range()), os.environ))
        allocator = _allocator
    return allocator.take()


def wait_listening(
    port: int,
    timeout: float = 10.0,
    proc: subprocess.Popen[bytes] | None = None,
    host: str = LOOPBACK,
) -> None:
    """Block until something accepts TCP connections on ``port``.

    Raises TimeoutError after ``timeout`` seconds, or as soon as ``proc`` (the
    process that should listen) has exited.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if proc is not None and proc.poll() is not None:
            raise TimeoutError(f"exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from exc
        time.sleep(delay)  # polling a port: there is no event to await
        delay = min(delay * 2, 0.1)


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 5.0
) -> int:
    """Send ``sig`` and wait ``timeout`` seconds for the exit, then SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return int(proc.returncode)


def kill_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGKILL (an abrupt death: no goodbyes) and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout)
