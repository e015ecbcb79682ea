"""CPU and memory of a job's process tree, measured across samples."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from gridmap_core.node.usage import UsageSampler, tail

BUSY = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass\n"
ALLOCATE = (
    "import time\nblock = bytearray({n})\n"
    "block[::4096] = b'x' * len(block[::4096])\ntime.sleep({s})\n"
)


def spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_busy_process_reads_near_100_percent() -> None:
    child = spawn(BUSY.format(s=3))
    try:
        sampler = UsageSampler(child.pid)
        time.sleep(1.0)
        usage = sampler.sample()
        assert usage.cpu_percent > 50  # one core busy; the other core may be shared
    finally:
        child.kill()
        child.wait()


def test_sleeping_process_reads_near_zero_and_not_always_zero() -> None:
    # The sampler starts once the child sleeps: its interpreter's start-up (tens of ms
    # of CPU, longer on a loaded machine) is not what this test measures.
    child = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); "
                              "time.sleep(5)"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        child.stdout.readline()
        sampler = UsageSampler(child.pid)
        time.sleep(0.5)
        assert sampler.sample().cpu_percent < 5
    finally:
        child.kill()
        child.wait()


def test_children_count_in_cpu_and_memory() -> None:
    # A parent that sleeps while its child burns CPU and holds 200 MB.
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {BUSY.format(s=1.5)!r}])\n"
        f"subprocess.Popen([sys.executable, '-c', {ALLOCATE.format(n=200 * 2**20, s=5)!r}])\n"
        "time.sleep(5)\n"
    )
    parent = spawn(code)
    try:
        sampler = UsageSampler(parent.pid)
        time.sleep(2.5)  # the busy child has come and gone; the allocating one runs
        usage = sampler.sample()
        assert usage.cpu_percent > 30, usage  # the ended child's CPU time still counts
        assert usage.rss_bytes > 200 * 2**20
        assert usage.processes >= 2
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()


def test_tail_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(10_000)))
    text = tail(str(log), 100)
    assert text.endswith("line 9999\n")
    assert text.startswith("line ")
    assert len(text) <= 100
    assert tail(str(tmp_path / "missing.log")) == ""


FORK_AND_HOLD = (
    "import os, sys, time\n"
    "block = bytearray(200 * 2**20)\n"
    "block[::4096] = b'x' * len(block[::4096])\n"
    "if os.fork() == 0:\n"
    "    time.sleep(30)\n"
    "    os._exit(0)\n"
    "print(flush=True)\n"
    "time.sleep(30)\n"
)


def test_a_forked_child_shares_its_parents_memory_once_with_unique_root() -> None:
    # 200 MB written before the fork: both processes map the same pages, and each
    # one's RSS counts them.
    parent = subprocess.Popen([sys.executable, "-c", FORK_AND_HOLD], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        parent.stdout.readline()
        both = UsageSampler(parent.pid).sample()
        once = UsageSampler(parent.pid, unique_root=True).sample()
        assert both.processes == once.processes == 2
        assert both.rss_bytes > 400 * 2**20
        assert 200 * 2**20 < once.rss_bytes < 300 * 2**20
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()


def test_a_child_that_ended_is_not_counted_twice(tmp_path: Path) -> None:
    # A child spins until told to stop; its parent waits for it, then sleeps. The
    # second sample's interval saw almost no work: the child's CPU time, counted by
    # the first sample while it ran, shows again in the parent's children_* times.
    stop = tmp_path / "stop"
    spinner = f"import os\nwhile not os.path.exists({str(stop)!r}): pass\n"
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {spinner!r}])\n"
        "print(flush=True)\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        sampler = UsageSampler(parent.pid)
        time.sleep(1.5)
        assert sampler.sample().cpu_percent > 30  # the child spins
        stop.touch()
        parent.stdout.readline()  # the child has ended and been waited for
        time.sleep(1.0)
        assert sampler.sample().cpu_percent < 30
    finally:
        parent.kill()
        parent.wait()
