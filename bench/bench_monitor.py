"""Benchmark the monitor itself: ``gridmap_core.map.monitor.MonitoredSession``.

``bench_transport.py`` measures a bare loop (receive, decode, replay guard, signed
ACK). This script drives the real monitor: its thread, its task table, heartbeat
decoding and bookkeeping, the sink calls, its once-a-second sweep for silent jobs and
its scheduler polls. The scheduler is a fake that launches nothing and reports every
job as running; the runners are simulated by load processes that speak the real
protocol over zmq on loopback.

Two measurements, each printed as the median of several runs:

* **Heartbeats per second** that the session's thread handles with 1,000 and 10,000
  simulated runners, and the ratio to ``bench_transport.py``'s bare loop measured in
  the same process with the same load (rounds alternate: a monitor window, then a
  bare-loop window). Each simulated runner FETCHes its task first, then heartbeats
  (status "running", 100% CPU). Two load processes share 200 DEALER connections and
  keep 4 heartbeats in flight on each, so the monitor is never idle.

  **No missed death:** 1% of the simulated runners (a fixed, seeded sample) stop
  heartbeating when the first measured window starts. Every one of them, and no other,
  must be reported to the sink as ``failed`` with a cause starting "no heartbeat",
  more than MAX_TIME_BETWEEN_HEARTBEATS and at most that plus ``--grace`` seconds
  after its last heartbeat was sent. Otherwise the script exits with status 1.

* **Result throughput** in MB/s (10^6 bytes) for 20 MB results: load processes,
  each a :class:`~gridmap_core.transports.zmq.ZmqClient`, send RESULT messages whose
  payloads are ``encode_value(value)`` of a 20 MB bytes value; the monitor checks
  them, unpickles them and hands the values to the sink. A run is timed from the
  moment the load processes are told to send until the sink holds the last value,
  and every value is compared with the one sent. The baseline is the original
  GridMap's serialization path for the same value, timed in this process:
  ``bz2.compress(cloudpickle.dumps(value, HIGHEST_PROTOCOL), 9)`` on the runner and
  ``cloudpickle.loads(bz2.decompress(...))`` on the monitor (transfer not included,
  which flatters the original).

Usage: python bench/bench_monitor.py [--runs 5] [--seconds 2] [--runners 1000 10000]
       [--processes 2] [--connections 200] [--window 4] [--dead-percent 1]
       [--max-silence 8] [--grace 2] [--results 10] [--result-processes 2]
       [--size-mb 20] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import bz2
import json
import logging
import multiprocessing
import os
import pickle
import platform
import queue
import random
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import zmq

from gridmap_core.backend import Batch, Failure, JobSpec, SessionOptions
from gridmap_core.backend.scheduler import JobStatus, Launch, Scheduler, Status
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.model.config import load_settings
from gridmap_core.transports import load_transport, with_curve_keys
from gridmap_core.transports.zmq import ZmqClient
from gridmap_core.wire.messages import Heartbeat, encode_heartbeat, encode_value
from gridmap_core.wire.protocol import (
    FROM_MONITOR,
    Codec,
    Kind,
    ProtocolError,
    ReplayGuard,
    is_reply_to,
    read_key_file,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_transport import fill_defaults, monitor_window  # a sibling script

TARGET_MESSAGES = 20_000
TARGET_MB_S = 300.0
SEED = 20261124
HOST = "node017.cluster.example.org"
BEAT = Heartbeat(cpu=100.0, memory=3_221_225_472, host_name=HOST, status="running",
                 processes=1, log_tail="iteration 41234: loss 0.01234, 812 samples/s\n" * 4)
THREAD_NAME = "bench-monitor"  # the session's thread is called "gridmap-" + this
MONITOR, BARE = 1, 2  # where the heartbeat load processes send (a shared phase value)
SETTLE = 0.2  # seconds between switching the load and starting a measured window
_CORRELATION = struct.Struct("!Q")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def job(x: int) -> int:
    """The batch's function; never run (the fake scheduler launches nothing)."""
    return x


def make_value(size: int) -> bytes:
    """The result every simulated runner returns: ``size`` seeded random bytes."""
    return random.Random(SEED).randbytes(size)


# -- the fakes -------------------------------------------------------------------------


class FakeScheduler:
    """A :class:`Scheduler` that launches nothing and says every job is running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks: list[int] = []  # task ids, in launch order
        self.cancelled: list[str] = []
        self.polls = 0

    def launch(self, launch: Launch) -> list[str]:
        with self._lock:
            self.tasks.extend(launch.tasks)
        return [f"job-{task}.{launch.attempt}" for task in launch.tasks]

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        with self._lock:
            self.polls += 1
        running = JobStatus(Status.RUNNING)
        return dict.fromkeys(ids, running)

    def cancel(self, ids: Sequence[str]) -> None:
        with self._lock:
            self.cancelled.extend(ids)

    def close(self) -> None:
        pass


class BenchSink:
    """A :class:`~gridmap_core.backend.Sink` that counts and records, cheaply: it runs
    on the monitor's thread."""

    def __init__(self, size: int) -> None:
        self.beats = 0
        self.heard = 0  # indices that have sent at least one heartbeat
        self._seen = bytearray(size)
        self.failures: dict[int, tuple[float, Failure]] = {}  # index -> (monotonic, why)
        self.resubmits: list[tuple[int, str]] = []
        self.values: list[tuple[int, Any]] = []
        self.last_value_at = 0.0  # perf_counter when the last value arrived
        self.expected_values = 0
        self.got_values = threading.Event()

    def claim(self, start: int, stop: int) -> Sequence[int]:
        return range(start, stop)

    def started(self, index: int, host_name: str, job_id: str = "") -> None:
        pass

    def succeeded(self, indices: Sequence[int], values: Sequence[Any], host_name: str) -> None:
        self.values.extend(zip(indices, values, strict=True))
        self.last_value_at = time.perf_counter()
        if len(self.values) >= self.expected_values:
            self.got_values.set()

    def failed(self, index: int, failure: Failure) -> None:
        self.failures[index] = (time.monotonic(), failure)

    def heartbeat(self, index: int, heartbeat: Mapping[str, Any]) -> None:
        self.beats += 1
        if not self._seen[index]:
            self._seen[index] = 1
            self.heard += 1

    def resubmitted(self, index: int, cause_of_death: str, kind: Any = None) -> None:
        self.resubmits.append((index, cause_of_death))

    def job_name(self, index: int) -> str | None:
        return None

    def waiting(self, index: int, note: str) -> None:
        pass


class Recorder(logging.Handler):
    """Keeps the monitor's log records, so 100 death warnings do not flood stderr."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def unexpected(self) -> list[str]:
        """Warnings and errors other than the expected deaths and kept logs."""
        return [record.getMessage() for record in self.records
                if record.levelno >= logging.WARNING and " died: no heartbeat" not in
                record.getMessage()]


def open_session(scratch: str, max_silence: float) -> tuple[MonitoredSession, FakeScheduler]:
    settings = load_settings({
        "TRANSPORT": "zmq",
        "MONITOR_INTERFACE": "127.0.0.1",
        "MAX_TIME_BETWEEN_HEARTBEATS": max_silence,
        "MAX_IDLE_HEARTBEATS": 0,
        "NUM_RESUBMITS": 0,
        "DEFAULT_TEMP_DIR": scratch,
    }, environ={}, cwd=scratch)
    scheduler = FakeScheduler()
    assert isinstance(scheduler, Scheduler)
    session = MonitoredSession(scheduler, SessionOptions(settings=settings, temp_dir=scratch),
                               work_dir=scratch, name=THREAD_NAME)
    return session, scheduler


def monitor_thread_cpu() -> float:
    """CPU seconds used so far by the session's thread (user + system)."""
    native = next(t.native_id for t in threading.enumerate()
                  if t.name == f"gridmap-{THREAD_NAME}")
    for thread in psutil.Process().threads():
        if thread.id == native:
            return float(thread.user_time + thread.system_time)
    raise RuntimeError("the monitor's thread has gone")


# -- heartbeats: the load processes ----------------------------------------------------


def heartbeat_load(monitor_address: str, bare_address: str, key_file: str, map_id: str,
                   tasks: Sequence[int], doomed: Sequence[int], connections: int, window: int,
                   phase: Any, kill: Any, stop: Any, events: Any) -> None:
    """Simulated runners ``tasks``, spread over ``connections`` DEALER sockets to the
    monitor and as many to the bare loop; ``phase`` says which of the two gets load.

    On the monitor's sockets each task first sends FETCH, then heartbeats. Once
    ``kill`` is set, the tasks in ``doomed`` send nothing more.
    """
    keys = read_key_file(key_file)
    codec = Codec(keys.mac, map_id)
    payload = encode_heartbeat(BEAT)
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, 2 * connections + 16)
    shares = [list(tasks[number::connections]) for number in range(connections)]
    sockets: dict[int, list[zmq.Socket[bytes]]] = {MONITOR: [], BARE: []}
    where: dict[zmq.Socket[bytes], tuple[int, int]] = {}
    # One poller per target, and only the loaded target's is polled: replies still
    # owed by the other wait in their sockets until their target is loaded again.
    pollers = {MONITOR: zmq.Poller(), BARE: zmq.Poller()}
    for target, address in ((MONITOR, monitor_address), (BARE, bare_address)):
        for number in range(connections):
            sock: zmq.Socket[bytes] = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            # A runner's CURVE keys: both endpoints admit nobody else.
            sock.curve_serverkey = keys.curve.server_public
            sock.curve_publickey = keys.curve.client_public
            sock.curve_secretkey = keys.curve.client_secret
            sock.connect(address)
            sockets[target].append(sock)
            where[sock] = (target, number)
            pollers[target].register(sock, zmq.POLLIN)
    cursors = {MONITOR: [0] * connections, BARE: [0] * connections}
    in_flight = {MONITOR: [0] * connections, BARE: [0] * connections}
    doomed_set = frozenset(doomed)
    last_sent: dict[int, float] = {}
    killed = False
    fetched = acked = bare_acked = errors = 0
    stops: list[int] = []

    def send(target: int, number: int) -> None:
        share = shares[number]
        for _ in range(len(share)):
            step = cursors[target][number]
            cursors[target][number] = step + 1
            task = share[step % len(share)]
            if target == BARE:
                kind = Kind.HEARTBEAT
            elif step < len(share):
                kind = Kind.FETCH
            elif killed and task in doomed_set:
                continue  # a dead runner: sends nothing
            else:
                kind = Kind.HEARTBEAT
            frames = codec.encode(kind, task, 0, payload if kind is Kind.HEARTBEAT else b"")
            sockets[target][number].send_multipart([_CORRELATION.pack(task), *frames])
            in_flight[target][number] += 1
            if target == MONITOR and task in doomed_set:
                last_sent[task] = time.monotonic()
            return

    current = 0
    while not stop.is_set():
        if not killed and kill.is_set():
            killed = True
        if phase.value != current:
            current = phase.value
            for number in range(connections):
                while in_flight[current][number] < min(window, len(shares[number])):
                    before = in_flight[current][number]
                    send(current, number)
                    if in_flight[current][number] == before:
                        break  # every runner of this connection is dead
        for sock, _ in pollers[current].poll(50):
            target, number = where[sock]
            while True:
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                in_flight[target][number] -= 1
                try:
                    reply = codec.decode(parts[1:], expect=FROM_MONITOR)
                except ProtocolError:
                    errors += 1
                    reply = None
                if reply is not None:
                    task_id = _CORRELATION.unpack(parts[0])[0]
                    if reply.header.task_id != task_id:
                        errors += 1
                    elif reply.header.kind is Kind.STOP:
                        stops.append(task_id)
                    elif target == BARE:
                        bare_acked += 1
                    elif reply.header.kind is Kind.TASK:
                        fetched += 1
                        if fetched == len(tasks):
                            events.put(("fetched", fetched))
                    else:
                        acked += 1
                send(target, number)
    for sock in where:
        sock.close(linger=0)
    context.term()
    events.put(("report", {"acked": acked, "bare_acked": bare_acked, "fetched": fetched,
                           "errors": errors, "stops": stops, "last_sent": last_sent}))


# -- heartbeats: the measurement -------------------------------------------------------


def check_deaths(sink: BenchSink, doomed: Sequence[int], last_sent: Mapping[int, float],
                 stops: Sequence[int], args: argparse.Namespace) -> dict[str, Any]:
    """Compare the deaths the sink was told of with the runners that were stopped."""
    expected = set(doomed)
    found = {index for index, (_, failure) in sink.failures.items()
             if (failure.cause_of_death or "").startswith("no heartbeat")}
    wrong = sorted(set(sink.failures) - expected)
    missed = sorted(expected - found)
    latencies = {index: sink.failures[index][0] - last_sent[index]
                 for index in sorted(found & expected) if index in last_sent}
    early = sorted(i for i, latency in latencies.items() if latency <= args.max_silence)
    late = sorted(i for i, latency in latencies.items()
                  if latency > args.max_silence + args.grace)
    never_beat = sorted(expected - set(last_sent))
    problems = []
    if missed:
        problems.append(f"{len(missed)} missed (e.g. {missed[:5]})")
    if wrong:
        problems.append(f"{len(wrong)} declared dead wrongly (e.g. "
                        f"{[(i, sink.failures[i][1].cause_of_death) for i in wrong[:3]]})")
    if early or late:
        problems.append(f"{len(early)} declared too early and {len(late)} too late "
                        f"(limit {args.max_silence:g} s + {args.grace:g} s)")
    if never_beat:
        problems.append(f"{len(never_beat)} doomed runners never sent a heartbeat")
    if sink.resubmits:
        problems.append(f"{len(sink.resubmits)} resubmissions (NUM_RESUBMITS is 0)")
    unexpected_stops = sorted(set(stops) - expected)
    if unexpected_stops:
        problems.append(f"STOP sent to {len(unexpected_stops)} live runners")
    values = list(latencies.values())
    return {
        "expected": len(expected),
        "found": len(found & expected),
        "missed": len(missed),
        "wrong": len(wrong),
        "latency_min": min(values) if values else None,
        "latency_max": max(values) if values else None,
        "problems": problems,
    }


def wait_for(what: str, condition: Any, timeout: float, processes: Sequence[Any]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        if not all(process.is_alive() for process in processes):
            raise SystemExit(f"a load process died while waiting for {what}")
        time.sleep(0.02)


def bench_heartbeats(runners: int, args: argparse.Namespace, scratch: str) -> dict[str, Any]:
    session, scheduler = open_session(scratch, args.max_silence)
    sink = BenchSink(runners)
    session.submit(Batch(spec=JobSpec(function=job), args=[(i,) for i in range(runners)],
                         kwargs=None, sink=sink))
    tasks = list(scheduler.tasks)  # task ids; batch index = task id - tasks[0]
    base = tasks[0]
    doomed = sorted(random.Random(SEED).sample(tasks, max(1, runners * args.dead_percent // 100)))
    keys = read_key_file(session.key_file)
    zmq_transport = load_transport("zmq")
    # The bare loop serves with the map's keys too: both pay for CURVE alike.
    bare = zmq_transport.serve(with_curve_keys(zmq_transport, {"interface": "127.0.0.1"},
                                               keys.curve))
    bare_codec, bare_guard = Codec(keys.mac, session.map_id), ReplayGuard()
    spawn = multiprocessing.get_context("spawn")
    phase = spawn.Value("i", MONITOR, lock=False)
    kill, stop, events = spawn.Event(), spawn.Event(), spawn.Queue()
    per_process = max(1, args.connections // args.processes)
    processes = []
    for number in range(args.processes):
        mine = tasks[number::args.processes]
        mine_set = set(mine)
        processes.append(spawn.Process(target=heartbeat_load, args=(
            session.address, bare.address, session.key_file, session.map_id, mine,
            [t for t in doomed if t in mine_set], min(per_process, len(mine)), args.window,
            phase, kill, stop, events), daemon=True))
    for process in processes:
        process.start()
    reports: list[dict[str, Any]] = []
    fetched_processes = 0

    def take_events() -> None:
        nonlocal fetched_processes
        while True:
            try:
                kind, data = events.get_nowait()
            except queue.Empty:
                return
            if kind == "fetched":
                fetched_processes += 1
            else:
                reports.append(data)

    rows: dict[str, list[float]] = {"monitor": [], "monitor_cpu_us": [], "bare": [],
                                    "bare_cpu_us": []}
    bare_replays = bare_rejected = 0
    try:
        def all_fetched() -> bool:
            take_events()
            return fetched_processes == len(processes)

        wait_for("every simulated runner to fetch its task", all_fetched, 120, processes)
        wait_for("a heartbeat from every simulated runner",
                 lambda: sink.heard == runners, 60, processes)
        # Warm-up of the bare loop, short: the session's runners are silent meanwhile.
        phase.value = BARE
        warm_end = time.monotonic() + min(1.0, args.max_silence / 4)
        while len(bare_guard) < runners and time.monotonic() < warm_end:
            monitor_window(bare, bare_codec, bare_guard, 0.1)
        kill.set()
        kill_time = time.monotonic()
        for run in range(args.runs):
            phase.value = MONITOR
            time.sleep(SETTLE)
            beats, cpu, start = sink.beats, monitor_thread_cpu(), time.perf_counter()
            time.sleep(args.seconds)
            beats, cpu = sink.beats - beats, monitor_thread_cpu() - cpu
            rows["monitor"].append(beats / (time.perf_counter() - start))
            rows["monitor_cpu_us"].append(cpu / max(beats, 1) * 1e6)
            phase.value = BARE
            monitor_window(bare, bare_codec, bare_guard, SETTLE)
            handled, replays, rejected, elapsed, bare_cpu = monitor_window(
                bare, bare_codec, bare_guard, args.seconds)
            bare_replays, bare_rejected = bare_replays + replays, bare_rejected + rejected
            rows["bare"].append(handled / elapsed)
            rows["bare_cpu_us"].append(bare_cpu / max(handled, 1) * 1e6)
            log(f"  {runners:,} runners, round {run + 1}: monitor {rows['monitor'][-1]:,.0f}/s "
                f"({rows['monitor_cpu_us'][-1]:.1f} us of its thread's CPU each), bare loop "
                f"{rows['bare'][-1]:,.0f}/s ({rows['bare_cpu_us'][-1]:.1f} us)")
        # Keep the survivors beating until every death is due (or seen).
        phase.value = MONITOR
        deadline = kill_time + args.max_silence + args.grace + 0.5
        doomed_indices = {task - base for task in doomed}
        while time.monotonic() < deadline and not doomed_indices <= set(sink.failures):
            time.sleep(0.05)
        failures_at_stop = dict(sink.failures)
        stop.set()
        def all_reported() -> bool:
            take_events()
            return len(reports) == len(processes)

        wait_for("the load processes' reports", all_reported, 30, [])
        for process in processes:
            process.join(30)
    finally:
        stop.set()
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
        dropped = session.dropped
        session.close()
        bare.close()
    for process in processes:
        if process.exitcode != 0:
            raise SystemExit(f"a load process failed (exit code {process.exitcode})")
    errors = sum(report["errors"] for report in reports)
    if errors or dropped or bare_replays or bare_rejected:
        raise SystemExit(f"heartbeat run went wrong: {errors} bad replies, {dropped} messages "
                         f"dropped by the monitor, {bare_replays + bare_rejected} by the bare loop")
    last_sent = {task - base: when for report in reports
                 for task, when in report["last_sent"].items()}
    stops = [task - base for report in reports for task in report["stops"]]
    sink.failures = failures_at_stop
    deaths = check_deaths(sink, sorted(doomed_indices), last_sent, stops, args)
    connections = sum(min(per_process, len(tasks[n::args.processes]))
                      for n in range(args.processes))
    medians = {name: statistics.median(values) for name, values in rows.items()}
    return {
        "runners": runners,
        "processes": args.processes,
        "connections": connections,
        "window": args.window,
        "runs": rows,
        "median": medians,
        "ratio": medians["monitor"] / medians["bare"],
        "deaths": deaths,
        "heartbeats_acked_by_load": sum(report["acked"] for report in reports),
        "heartbeats_seen_by_sink": sink.beats,
        "scheduler_polls": scheduler.polls,
    }


# -- results ---------------------------------------------------------------------------


def result_load(address: str, key_file: str, map_id: str, runs: Sequence[Sequence[int]],
                size: int, commands: Any, events: Any) -> None:
    """A simulated runner process: FETCH every task, then on each command send the
    RESULTs of one run, one at a time, through a real ZmqClient."""
    keys = read_key_file(key_file)
    codec = Codec(keys.mac, map_id)
    payload = encode_value(make_value(size), HOST)
    with ZmqClient(address, {"curve": keys.curve}) as client:
        for task in (task for run in runs for task in run):
            request = codec.encode(Kind.FETCH, task, 0)
            reply = codec.decode(client.request(request, 60), expect=FROM_MONITOR)
            if reply.header.kind is not Kind.TASK:
                raise SystemExit(f"task {task}: FETCH answered with {reply.header.kind.value}")
        events.put(("ready", None))
        while (run := commands.get()) is not None:
            for task in runs[run]:
                header = codec.header(Kind.RESULT, task, 0)
                frames = codec.encode_header(header, payload)
                reply = codec.decode(client.request(frames, 60), expect=FROM_MONITOR)
                if reply.header.kind is not Kind.ACK or not is_reply_to(reply.header, header):
                    raise SystemExit(f"task {task}: RESULT answered with "
                                     f"{reply.header.kind.value}")
            events.put(("done", run))


def original_path(value: bytes) -> float:
    """Seconds for the original GridMap's way with a result: zdumps on the runner,
    zloads on the monitor (gridmap 0.15.0, gridmap/data.py)."""
    start = time.perf_counter()
    data = bz2.compress(cloudpickle.dumps(value, pickle.HIGHEST_PROTOCOL), 9)
    back = cloudpickle.loads(bz2.decompress(data))
    elapsed = time.perf_counter() - start
    if back != value:
        raise SystemExit("the bz2 path did not give the value back")
    return elapsed


def bench_results(args: argparse.Namespace, scratch: str) -> dict[str, Any]:
    size = int(args.size_mb * 1e6)
    value = make_value(size)
    # Silence never kills here: a task waits for its run, untimed, after its FETCH.
    session, scheduler = open_session(scratch, 3600)
    count = (args.runs + 1) * args.results  # run 0 is a warm-up
    sink = BenchSink(count)
    session.submit(Batch(spec=JobSpec(function=job), args=[(i,) for i in range(count)],
                         kwargs=None, sink=sink))
    tasks = list(scheduler.tasks)
    base = tasks[0]
    runs = [tasks[r * args.results:(r + 1) * args.results] for r in range(args.runs + 1)]
    spawn = multiprocessing.get_context("spawn")
    events = spawn.Queue()
    loads = []
    for number in range(args.result_processes):
        commands = spawn.Queue()
        share = [run[number::args.result_processes] for run in runs]
        process = spawn.Process(target=result_load, args=(
            session.address, session.key_file, session.map_id, share, size, commands, events),
            daemon=True)
        loads.append((process, commands))
    rates: list[float] = []
    baseline: list[float] = []
    try:
        for process, _ in loads:
            process.start()
        for _ in loads:
            kind, _ = events.get(timeout=120)
            if kind != "ready":
                raise SystemExit(f"a result process said {kind!r}")
        for run in range(args.runs + 1):
            sink.values.clear()
            sink.expected_values = args.results
            sink.got_values.clear()
            start = time.perf_counter()
            for _, commands in loads:
                commands.put(run)
            if not sink.got_values.wait(120):
                raise SystemExit(f"results of run {run} did not all arrive")
            elapsed = sink.last_value_at - start
            for _ in loads:
                events.get(timeout=60)
            got = sorted(sink.values, key=lambda item: item[0])
            if [index for index, _ in got] != [task - base for task in runs[run]] or any(
                    received != value for _, received in got):
                raise SystemExit(f"run {run}: the sink did not get every value whole")
            sink.values.clear()
            if run == 0:
                continue
            rates.append(args.results * size / elapsed / 1e6)
            baseline.append(size / original_path(value) / 1e6)
            log(f"  results, run {run}: monitor {rates[-1]:,.0f} MB/s, original bz2 path "
                f"{baseline[-1]:,.1f} MB/s")
    finally:
        for process, commands in loads:
            if process.is_alive():
                commands.put(None)
                process.join(10)
            if process.is_alive():
                process.terminate()
        dropped = session.dropped
        session.close()
    if sink.failures or dropped:
        raise SystemExit(f"result run went wrong: {len(sink.failures)} failures, {dropped} "
                         "messages dropped")
    return {
        "size_mb": args.size_mb,
        "results_per_run": args.results,
        "processes": args.result_processes,
        "runs": rates,
        "median": statistics.median(rates),
        "baseline_runs": baseline,
        "baseline_median": statistics.median(baseline),
        "ratio": statistics.median(rates) / statistics.median(baseline),
    }


# -- main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of one heartbeat window (default 2)")
    parser.add_argument("--runners", type=int, nargs="+", default=None,
                        help="simulated runners (default 1000 10000)")
    parser.add_argument("--processes", type=int, default=2,
                        help="heartbeat load processes (default 2)")
    parser.add_argument("--connections", type=int, default=None,
                        help="DEALER connections over all load processes (default 200)")
    parser.add_argument("--window", type=int, default=4,
                        help="heartbeats in flight per connection (default 4)")
    parser.add_argument("--dead-percent", type=int, default=1,
                        help="percent of simulated runners that stop heartbeating (default 1)")
    parser.add_argument("--max-silence", type=float, default=None,
                        help="MAX_TIME_BETWEEN_HEARTBEATS for the run (default 8)")
    parser.add_argument("--grace", type=float, default=2.0,
                        help="how late after MAX_TIME_BETWEEN_HEARTBEATS a death may be "
                             "declared (default 2)")
    parser.add_argument("--results", type=int, default=None,
                        help="results per run (default 10)")
    parser.add_argument("--result-processes", type=int, default=2,
                        help="simulated runners sending results at once (default 2)")
    parser.add_argument("--size-mb", type=float, default=None,
                        help="result size in MB (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 1,000 runners, short and few runs, 5 MB results")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = fill_defaults(parser.parse_args(argv))
    quick = args.quick
    args.connections = args.connections or (20 if quick else 200)
    args.max_silence = args.max_silence or (2.0 if quick else 8.0)
    # The session's runners are silent while the bare loop is measured.
    if SETTLE + args.seconds > args.max_silence / 2:
        parser.error(f"--seconds {args.seconds:g} is too long for --max-silence "
                     f"{args.max_silence:g}: live runners would be declared dead")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    recorder = Recorder()
    monitor_logger = logging.getLogger("gridmap_core")
    monitor_logger.addHandler(recorder)
    monitor_logger.propagate = False
    monitor_logger.setLevel(logging.INFO)
    log(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, pyzmq {zmq.__version__}, "
        f"libzmq {zmq.zmq_version()}")
    with tempfile.TemporaryDirectory(prefix="gridmap-bench-monitor-") as scratch:
        heartbeats = [bench_heartbeats(runners, args, scratch) for runners in args.runners]
        results = bench_results(args, scratch)

    print(f"\nHeartbeats handled by MonitoredSession's thread (zmq, loopback; median of "
          f"{args.runs} runs of {args.seconds:g} s)")
    print(f"{'runners':>8} {'connections':>11} {'in flight':>9} {'monitor/s':>10} "
          f"{'CPU/msg':>8} {'bare loop/s':>11} {'CPU/msg':>8} {'monitor/bare':>12}  "
          "monitor runs")
    for row in heartbeats:
        median = row["median"]
        runs = ", ".join(f"{rate:,.0f}" for rate in row["runs"]["monitor"])
        print(f"{row['runners']:>8,} {row['connections']:>11} "
              f"{row['connections'] * row['window']:>9} {median['monitor']:>10,.0f} "
              f"{median['monitor_cpu_us']:>5.1f} us {median['bare']:>11,.0f} "
              f"{median['bare_cpu_us']:>5.1f} us {row['ratio']:>11.2f}x  {runs}")
    print("(CPU/msg: CPU time of the monitor's thread, or of the bare loop, per message; "
          "the load processes share the same CPUs)")
    print(f"\nDeaths: {args.dead_percent}% of runners stop heartbeating; each must be declared "
          f"dead within MAX_TIME_BETWEEN_HEARTBEATS={args.max_silence:g} s + {args.grace:g} s")
    failed = False
    for row in heartbeats:
        deaths = row["deaths"]
        latency = ("" if deaths["latency_min"] is None else
                   f", {deaths['latency_min']:.1f}-{deaths['latency_max']:.1f} s after the "
                   "last heartbeat")
        verdict = "ok" if not deaths["problems"] else "FAILED: " + "; ".join(deaths["problems"])
        print(f"{row['runners']:>8,} runners: expected {deaths['expected']} deaths, found "
              f"{deaths['found']}, missed {deaths['missed']}, wrongly declared "
              f"{deaths['wrong']}{latency}: {verdict}")
        failed = failed or bool(deaths["problems"])
    print(f"\nResults of {args.size_mb:g} MB through MonitoredSession ({args.result_processes} "
          f"runners sending at once; median of {args.runs} runs of {args.results} results)")
    print(f"{'monitor MB/s':>12} {'original bz2 MB/s':>17} {'monitor/original':>16}  "
          "monitor runs")
    print(f"{results['median']:>12,.0f} {results['baseline_median']:>17,.1f} "
          f"{results['ratio']:>15,.0f}x  " + ", ".join(f"{r:,.0f}" for r in results["runs"]))
    slowest = min(row["median"]["monitor"] for row in heartbeats)
    print(f"\nTargets: >= {TARGET_MESSAGES:,} heartbeats/s: "
          f"{'met' if slowest >= TARGET_MESSAGES else 'NOT met'} ({slowest:,.0f}); "
          f">= {TARGET_MB_S:g} MB/s for results: "
          f"{'met' if results['median'] >= TARGET_MB_S else 'NOT met'} "
          f"({results['median']:,.0f}); no missed or wrong death: "
          f"{'NOT met' if failed else 'met'}")
    unexpected = recorder.unexpected()
    if unexpected:
        log(f"the monitor logged {len(unexpected)} unexpected warnings, e.g.: {unexpected[:3]}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"system": platform.system(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "pyzmq": zmq.__version__,
                        "libzmq": zmq.zmq_version()},
            "settings": {key: value for key, value in vars(args).items() if key != "json"},
            "heartbeats": heartbeats,
            "results": results,
        }, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
