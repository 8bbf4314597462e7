"""sd_notify: datagrams to NOTIFY_SOCKET (path or abstract '@' name), nothing without it."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from host.notify import NullNotifier, SocketNotifier, notifier_from_env


def test_no_notify_socket_means_no_notifications() -> None:
    notifier = notifier_from_env({})
    assert isinstance(notifier, NullNotifier)
    assert notifier.watchdog_s is None
    notifier.notify("READY=1")  # goes nowhere, never fails


def test_path_socket_gets_the_messages(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        notifier = notifier_from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
        assert isinstance(notifier, SocketNotifier)
        assert notifier.watchdog_s == pytest.approx(2.0)
        notifier.notify("READY=1")
        notifier.notify("STATUS=P2 free; link connected")
        assert server.recv(4096) == b"READY=1"
        assert server.recv(4096) == b"STATUS=P2 free; link connected"
        notifier.close()


def test_abstract_socket_is_supported() -> None:
    name = f"coplay-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        notifier = notifier_from_env({"NOTIFY_SOCKET": "@" + name})
        notifier.notify("WATCHDOG=1")
        assert server.recv(4096) == b"WATCHDOG=1"
        notifier.close()


def test_watchdog_for_another_pid_is_ignored(tmp_path: Path) -> None:
    env = {
        "NOTIFY_SOCKET": str(tmp_path / "n"),
        "WATCHDOG_USEC": "1000000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    notifier = notifier_from_env(env)
    assert notifier.watchdog_s is None
    notifier.close()


def test_a_missing_listener_is_not_an_error(tmp_path: Path) -> None:
    notifier = notifier_from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    notifier.notify("READY=1")
    notifier.close()


@pytest.mark.timeout(10)
def test_a_reader_that_stops_reading_never_stalls_the_daemon(tmp_path: Path) -> None:
    """A full notify queue drops datagrams instead of blocking the caller's main loop."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)  # never read: its queue fills after ~10 datagrams
        notifier = SocketNotifier(path)
        for _ in range(1000):  # blocking sends would hang here until the timeout
            notifier.notify("WATCHDOG=1")
        notifier.close()
        server.setblocking(False)
        received = 0
        while True:
            try:
                server.recv(64)
            except BlockingIOError:
                break
            received += 1
        assert 0 < received < 1000
