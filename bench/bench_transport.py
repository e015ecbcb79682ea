"""Benchmark the runner <-> monitor transports and the message codec.

Two measurements, each printed as the median of several runs:

* **Heartbeats per second** that one monitor-side loop handles over zmq on loopback:
  ``receive`` + ``Codec.decode`` (size checks, HMAC-SHA256, JSON header) +
  ``ReplayGuard.accept`` + ``Codec.reply`` (an ACK, signed) + ``reply``; all in one
  thread, exactly the calls a monitor makes.

  *What is simulated:* the runners. ``--processes`` load processes open
  ``--connections`` DEALER sockets between them (real TCP connections to the
  monitor's ROUTER) and spread the 1,000 or 10,000 simulated runners over them, each
  runner a task id with its own heartbeat sequence. Each connection keeps
  ``--window`` heartbeats in flight (each from a different runner of that
  connection), and sends the next as soon as an ACK comes back, so the monitor is
  never idle: the figure is the loop's capacity, not a heartbeat schedule. Every
  heartbeat is a real message (a ~300-byte pickled dict like a runner's, signed with
  the map key read from a 0600 key file), and every ACK is authenticated by the load
  process. A real runner sends one heartbeat every few seconds on its own
  connection; 10,000 of them at one per 10 s would need 1,000 messages/s.

* **Result throughput** in MB/s (10^6 bytes) for 20 MB payloads, for each transport,
  with runner and monitor in the same process (two threads) over loopback or a local
  directory: ``Codec.encode`` (HMAC) + ``request`` + the monitor's ``receive`` +
  ``decode`` (HMAC again) + ACK + the runner's ``decode`` of the ACK. The payload is
  random bytes: pickling the result is the runner's cost, not the transport's.

Usage: python bench/bench_transport.py [--runs 5] [--seconds 2] [--runners 1000 10000]
       [--processes 2] [--connections 200] [--window 4] [--results 10] [--size-mb 20]
       [--directory DIR] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq

from gridmap_core.transports import Endpoint, load_transport, with_curve_keys
from gridmap_core.wire.protocol import (
    FROM_RUNNER,
    Codec,
    Kind,
    MapKeys,
    ProtocolError,
    ReplayGuard,
    new_keys,
    read_key_file,
    write_key_file,
)

MAP_ID = "bench"
TARGET_MESSAGES = 20_000
TARGET_MB_S = 300.0
HEARTBEAT = {
    "cpu": 97.5,
    "memory": 3_221_225_472,
    "host_name": "node017.cluster.example.org",
    "log_tail": "iteration 41234: loss 0.01234, 812 samples/s\n" * 4,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- heartbeats ------------------------------------------------------------------------


def load_process(address: str, key_path: str, tasks: Sequence[int], connections: int,
                 window: int, stop: Any, report: Any) -> None:
    """Simulated runners: ``tasks`` spread over ``connections`` DEALER sockets."""
    keys = read_key_file(key_path)
    codec = Codec(keys.mac, MAP_ID)
    payload = pickle.dumps(HEARTBEAT, protocol=5)
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, connections + 16)  # the default is 1,023
    sockets = []
    for _ in range(connections):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # A runner's CURVE keys: the monitor's endpoint admits nobody else.
        sock.curve_serverkey = keys.curve.server_public
        sock.curve_publickey = keys.curve.client_public
        sock.curve_secretkey = keys.curve.client_secret
        sock.connect(address)
        sockets.append(sock)
    index = {sock: number for number, sock in enumerate(sockets)}
    shares = [list(tasks[number::connections]) for number in range(connections)]
    cursors = [0] * connections
    sent = acked = errors = 0

    def send(number: int) -> None:
        nonlocal sent
        share = shares[number]
        task = share[cursors[number] % len(share)]
        cursors[number] += 1
        sockets[number].send_multipart([b"corr", *codec.encode(Kind.HEARTBEAT, task, 0, payload)])
        sent += 1

    poller = zmq.Poller()
    for number, sock in enumerate(sockets):
        poller.register(sock, zmq.POLLIN)
        for _ in range(min(window, len(shares[number]))):
            send(number)
    while not stop.is_set():
        for sock, _ in poller.poll(100):
            while True:
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    ok = codec.decode(parts[1:]).header.kind is Kind.ACK
                except ProtocolError:
                    ok = False
                if ok:
                    acked += 1
                else:
                    errors += 1
                send(index[sock])
    for sock in sockets:
        sock.close(linger=0)
    context.term()
    report.put((sent, acked, errors))


def monitor_window(endpoint: Endpoint, codec: Codec, guard: ReplayGuard, seconds: float
                   ) -> tuple[int, int, int, float, float]:
    """Handle heartbeats for ``seconds``: (handled, replays, rejected, elapsed, CPU
    seconds of this thread)."""
    handled = replays = rejected = 0
    cpu = time.thread_time()
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        request = endpoint.receive(0.05)
        if request is None:
            continue
        token, frames = request
        try:
            message = codec.decode(frames, expect=FROM_RUNNER)
        except ProtocolError:
            rejected += 1
            continue
        if not guard.accept(message.header):
            replays += 1
            continue
        endpoint.reply(token, codec.reply(message.header, Kind.ACK))
        handled += 1
    return handled, replays, rejected, time.perf_counter() - start, time.thread_time() - cpu


def bench_heartbeats(runners: int, args: argparse.Namespace, key_path: Path
                     ) -> dict[str, Any]:
    keys = read_key_file(key_path)
    transport = load_transport("zmq")
    endpoint = transport.serve(with_curve_keys(transport, {"interface": "127.0.0.1"},
                                               keys.curve))
    codec, guard = Codec(keys.mac, MAP_ID), ReplayGuard()
    spawn = multiprocessing.get_context("spawn")
    stop, report = spawn.Event(), spawn.Queue()
    tasks = list(range(runners))
    per_process = max(1, args.connections // args.processes)
    processes = [
        spawn.Process(target=load_process, args=(
            endpoint.address, str(key_path), tasks[number::args.processes],
            min(per_process, len(tasks[number::args.processes])), args.window, stop, report))
        for number in range(args.processes)
    ]
    for process in processes:
        process.start()
    rates: list[float] = []
    cpu_per_message: list[float] = []
    totals = [0, 0, 0]
    try:
        # Warm-up: until every simulated runner has been heard from (and the guard
        # holds all of them), plus a moment.
        deadline = time.monotonic() + 120
        while len(guard) < runners:
            if time.monotonic() > deadline or not all(p.is_alive() for p in processes):
                raise SystemExit(f"only {len(guard):,} of {runners:,} simulated runners were "
                                 "heard from (see the load processes' errors above)")
            monitor_window(endpoint, codec, guard, 0.2)
        monitor_window(endpoint, codec, guard, min(0.5, args.seconds))
        for run in range(args.runs):
            handled, replays, rejected, elapsed, cpu = monitor_window(endpoint, codec, guard,
                                                                      args.seconds)
            rates.append(handled / elapsed)
            cpu_per_message.append(cpu / max(handled, 1) * 1e6)
            totals = [totals[0] + handled, totals[1] + replays, totals[2] + rejected]
            log(f"  heartbeats, {runners:,} runners, run {run + 1}: {rates[-1]:,.0f} messages/s,"
                f" {cpu_per_message[-1]:.1f} us of loop CPU each")
    finally:
        stop.set()
        # keep answering until the load processes have stopped sending
        while any(process.is_alive() for process in processes):
            monitor_window(endpoint, codec, guard, 0.1)
        for process in processes:
            process.join()
        endpoint.close()
    acked = errors = 0
    for process in processes:
        if process.exitcode != 0:
            raise SystemExit(f"a load process failed (exit code {process.exitcode})")
        _, process_acked, process_errors = report.get(timeout=30)
        acked, errors = acked + process_acked, errors + process_errors
    if totals[1] or totals[2] or errors:
        raise SystemExit(f"heartbeat run went wrong: {totals[1]} replays, {totals[2]} "
                         f"rejected, {errors} bad ACKs")
    return {
        "runners": runners,
        "processes": args.processes,
        "connections": sum(min(per_process, len(tasks[n::args.processes]))
                           for n in range(args.processes)),
        "window": args.window,
        "runners_heard": len(guard),
        "runs": rates,
        "median": statistics.median(rates),
        "loop_cpu_us": cpu_per_message,
        "median_loop_cpu_us": statistics.median(cpu_per_message),
        "acked_by_load": acked,
    }


# -- results ---------------------------------------------------------------------------


def bench_results(name: str, args: argparse.Namespace, keys: MapKeys, payload: bytes
                  ) -> dict[str, Any]:
    transport = load_transport(name)
    options: dict[str, Any] = {"interface": "127.0.0.1"} if name == "zmq" else {
        "directory": args.directory}
    endpoint = transport.serve(with_curve_keys(transport, options, keys.curve))
    monitor, runner = Codec(keys.mac, MAP_ID), Codec(keys.mac, MAP_ID)
    guard = ReplayGuard()
    stop = threading.Event()
    received: list[int] = []

    def serve() -> None:
        while not stop.is_set():
            request = endpoint.receive(0.05)
            if request is None:
                continue
            token, frames = request
            message = monitor.decode(frames, expect=FROM_RUNNER)
            if guard.accept(message.header):
                received.append(len(message.payload))
                endpoint.reply(token, monitor.reply(message.header, Kind.ACK))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = transport.connect(endpoint.address, with_curve_keys(transport, {}, keys.curve))
    rates: list[float] = []
    try:
        client.request(runner.encode(Kind.RESULT, 0, 0, payload), 60)  # warm-up
        for run in range(args.runs):
            start = time.perf_counter()
            for task in range(args.results):
                reply = runner.decode(client.request(runner.encode(Kind.RESULT, task, 0, payload),
                                                     60))
                assert reply.header.kind is Kind.ACK and reply.header.task_id == task
            elapsed = time.perf_counter() - start
            rates.append(args.results * len(payload) / elapsed / 1e6)
            log(f"  results over {name}, run {run + 1}: {rates[-1]:,.0f} MB/s")
    finally:
        stop.set()
        thread.join()
        client.close()
        endpoint.close()
    if received != [len(payload)] * (1 + args.runs * args.results):
        raise SystemExit(f"{name}: the monitor did not receive every result whole")
    return {"transport": name, "runs": rates, "median": statistics.median(rates),
            "seconds_per_result": len(payload) / 1e6 / statistics.median(rates)}


# -- main ------------------------------------------------------------------------------


def fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options this benchmark shares with bench_monitor.py, full or ``--quick``."""
    quick = args.quick
    args.runs = args.runs or (2 if quick else 5)
    args.seconds = args.seconds or (0.3 if quick else 2.0)
    args.runners = args.runners or ([1000] if quick else [1000, 10000])
    args.results = args.results or (2 if quick else 10)
    args.size_mb = args.size_mb or (5 if quick else 20)
    return args


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of one heartbeat run (default 2)")
    parser.add_argument("--runners", type=int, nargs="+", default=None,
                        help="simulated runners (default 1000 10000)")
    parser.add_argument("--processes", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--connections", type=int, default=200,
                        help="DEALER connections over all load processes (default 200)")
    parser.add_argument("--window", type=int, default=4,
                        help="heartbeats in flight per connection (default 4)")
    parser.add_argument("--results", type=int, default=None,
                        help="results per run (default 10)")
    parser.add_argument("--size-mb", type=float, default=None,
                        help="result size in MB (default 20)")
    parser.add_argument("--directory", default=None,
                        help="where the filesystem transport writes (default: a temporary "
                             "directory)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 1,000 runners, short and few runs, 5 MB results")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = fill_defaults(parser.parse_args(argv))
    if args.quick and args.connections == 200:
        args.connections = 20
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gridmap-bench-") as scratch:
        args.directory = args.directory or scratch
        key_path = write_key_file(Path(scratch) / "map.key", new_keys())
        keys = read_key_file(key_path)
        log(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, pyzmq {zmq.__version__}, "
            f"libzmq {zmq.zmq_version()}")
        heartbeats = [bench_heartbeats(runners, args, key_path) for runners in args.runners]
        payload = os.urandom(int(args.size_mb * 1e6))
        results = [bench_results(name, args, keys, payload) for name in ("zmq", "filesystem")]

    print(f"\nHeartbeats handled by one monitor loop (zmq, loopback; median of {args.runs} "
          f"runs of {args.seconds:g} s)")
    print(f"{'runners':>8} {'connections':>11} {'processes':>9} {'in flight':>9} "
          f"{'messages/s':>11} {'loop CPU/msg':>12}  runs")
    for row in heartbeats:
        runs = ", ".join(f"{rate:,.0f}" for rate in row["runs"])
        print(f"{row['runners']:>8,} {row['connections']:>11} {row['processes']:>9} "
              f"{row['connections'] * row['window']:>9} {row['median']:>11,.0f} "
              f"{row['median_loop_cpu_us']:>9.1f} us  {runs}")
    print("(loop CPU/msg: CPU time of the monitor's thread per message; the load processes "
          "and ZeroMQ's I/O threads share the same CPUs)")
    print(f"\nResults of {args.size_mb:g} MB, runner and monitor in one process (median of "
          f"{args.runs} runs of {args.results} results)")
    print(f"{'transport':>10} {'MB/s':>7} {'s/result':>9}  runs")
    for row in results:
        runs = ", ".join(f"{rate:,.0f}" for rate in row["runs"])
        print(f"{row['transport']:>10} {row['median']:>7,.0f} {row['seconds_per_result']:>9.3f}"
              f"  {runs}")
    slowest_heartbeats = min(row["median"] for row in heartbeats)
    print(f"\nTargets: >= {TARGET_MESSAGES:,} messages/s: "
          f"{'met' if slowest_heartbeats >= TARGET_MESSAGES else 'NOT met'} "
          f"({slowest_heartbeats:,.0f}); >= {TARGET_MB_S:g} MB/s for results: " + "; ".join(
              f"{row['transport']} {'met' if row['median'] >= TARGET_MB_S else 'NOT met'}"
              for row in results))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"system": platform.system(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "pyzmq": zmq.__version__,
                        "libzmq": zmq.zmq_version()},
            "settings": {key: value for key, value in vars(args).items()
                         if key not in ("json",)},
            "heartbeats": heartbeats,
            "results": results,
        }, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
