"""Free ports for child processes: outside the kernel's ephemeral range, one slice per worker."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from relay.procs import (
    PortAllocator,
    ephemeral_range,
    free_port,
    port_pool,
    wait_listening,
    worker_slice,
)


def test_the_pool_lies_outside_the_ephemeral_range_so_no_connect_takes_a_port() -> None:
    pool = port_pool((32768, 60999))
    assert len(pool) >= 1000
    assert pool.start >= 1024 and pool.stop - 1 < 32768
    high = port_pool((1024, 50000))  # little room below: the pool goes above instead
    assert high.start > 50000 and high.stop <= 65536


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    path = tmp_path / "ip_local_port_range"
    path.write_text("40000\t50000\n")
    assert ephemeral_range(path) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_each_xdist_worker_draws_from_a_slice_no_other_worker_uses() -> None:
    pool = port_pool((32768, 60999))
    slices = [
        set(worker_slice(pool, {"PYTEST_XDIST_WORKER": f"gw{i}", "PYTEST_XDIST_WORKER_COUNT": "4"}))
        for i in range(4)
    ]
    assert all(len(s) >= len(pool) // 4 for s in slices)
    assert all(not (a & b) for i, a in enumerate(slices) for b in slices[i + 1 :])
    assert worker_slice(pool, {}) == pool  # not under xdist: the whole pool


def test_a_port_something_listens_on_is_skipped_and_none_is_handed_out_twice() -> None:
    first = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first))
        busy.listen()
        allocator = PortAllocator(range(first, first + 3), start=0)
        taken = [allocator.take(), allocator.take()]
    assert first not in taken
    assert taken == [first + 1, first + 2]
    assert allocator.take() == first  # a lap later, the port is free again


def test_waiting_for_a_listener_ends_when_its_process_has_exited() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(TimeoutError, match="exited with 0"):
        wait_listening(free_port(), timeout=30, proc=proc)
