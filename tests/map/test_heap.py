"""The monitor gives back the memory a flood of garbage left in the C heap."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import psutil
import pytest
from gridmap_local.backend import LocalBackend

from gridmap_core.backend import SessionOptions
from gridmap_core.map import heap
from gridmap_core.map.heap import HeapTrim
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.model.config import load_settings
from tests.support import monitored


class Calls:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        return 1


def test_one_trim_once_a_burst_of_drops_is_over() -> None:
    calls = Calls()
    trim = HeapTrim(calls, after_drops=100, after_bytes=10**6)
    assert not trim.check(0, 0)  # nothing dropped: never a trim
    assert not trim.check(0, 0)
    assert not trim.check(60, 100)  # a burst under way: no trim while it lasts
    assert not trim.check(150, 300)
    assert trim.check(150, 300)  # over: one trim
    assert calls.calls == [0] and trim.trims == 1
    assert not trim.check(150, 300)  # not again without new drops
    assert not trim.check(200, 400)
    assert not trim.check(200, 400)  # 50 more drops and 100 bytes: not worth one
    assert not trim.check(201, 2 * 10**6)  # a few large messages: worth one, once over
    assert trim.check(201, 2 * 10**6)
    assert trim.trims == 2


def test_no_trim_where_there_is_no_malloc_trim() -> None:
    trim = HeapTrim(None, after_drops=1)
    trim.check(5, 5)
    assert not trim.check(5, 5) and trim.trims == 0


@pytest.mark.skipif(heap.malloc_trim is None, reason="no glibc malloc_trim here")
def test_glibc_malloc_trim_is_found_and_callable() -> None:
    assert heap.malloc_trim is not None and heap.malloc_trim(0) in (0, 1)


# A buggy job of the map floods it: it has the map's client keys (a peer without them
# never gets past the CURVE handshake), but not the MAC key, so every message is dropped.
FLOOD = textwrap.dedent("""
    import sys, zmq
    from gridmap_core.wire.keys import read_key_file
    address, count, key_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    curve = read_key_file(key_file).curve
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, -1)
    sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.client_public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.client_secret)
    sock.connect(address)
    payload = bytes(range(256)) * 4096  # 1 MiB
    for n in range(count):  # three frames, the right shape: each goes through the MAC
        sock.send_multipart([b"corr", b"{}" + str(n).encode(), b"m" * 32, payload])
    sock.close()
    context.term()  # returns once every message is sent
""")


def _flood(session: MonitoredSession, count: int) -> None:
    subprocess.run([sys.executable, "-c", FLOOD, session.address, str(count),
                    session.key_file], check=True, timeout=120)


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


@pytest.mark.skipif(heap.malloc_trim is None, reason="no glibc malloc_trim here")
def test_the_monitor_gives_back_what_a_backlog_of_garbage_left_in_the_heap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    options = SessionOptions(settings=load_settings(monitored.FAST), max_processes=1,
                             options={"mode": "runner"})
    session = LocalBackend().open(options)
    assert isinstance(session, MonitoredSession)
    process = psutil.Process()
    try:
        # Large blocks freed once make glibc serve the next ones from its heap rather
        # than from mmap: so it does in a monitor that has been running a while.
        _flood(session, 20)
        _wait_for(lambda: session.dropped >= 20 and session.heap.trims >= 1)
        gc.collect()
        before = process.memory_info().rss
        # Hold the monitor's loop up while 150 MB of garbage arrives, as a flood
        # faster than the loop does: ZeroMQ queues it all in the heap.
        gate = threading.Event()
        handle = session._server.handle

        def held(*args: Any) -> None:
            gate.wait(60)
            handle(*args)

        monkeypatch.setattr(session._server, "handle", held)
        _flood(session, 150)
        trims = session.heap.trims
        gate.set()
        _wait_for(lambda: session.dropped >= 170 and session.heap.trims > trims)
        grown = process.memory_info().rss - before
    finally:
        session.close()
    # Without the trim the heap keeps most of it (measured: 122-126 MB more); with
    # it, less than 1 MB.
    assert grown < 50 * 2**20, f"{grown / 2**20:.0f} MB more than before the flood"
