"""What a backend runs on a compute node: ``python -m gridmap_core.node.runner …``.

The runner fetches its task from the monitor, decodes it in the task's working
directory, runs the function in a child process of its own (see
:mod:`gridmap_core.node.job_process`), sends a heartbeat every ``--heartbeat`` seconds
while it runs, and sends the result (or the exception with its traceback). The
monitor may answer a result with another task of the same map (REUSE_RUNNERS), which
the runner then runs the same way, under that task's id. The map's keys (the MAC key,
and the CURVE keys of the zmq transport) are read from ``--key-file``; they never
appear on the command line or in the environment.

Exit status: 0 when the result was delivered (also when the function raised);
2 for a bad command line or key file; 3 when the monitor could not be reached;
4 when the monitor said stop (cancelled, or superseded by a resubmission); 5 when
the monitor was lost while the job ran or its result could not be delivered; 6 when
the job's process ended without a result (killed by a signal, or it exited); 7 when
this node does not see the map's session directory, the directory of the key file
(temp_dir is not shared with the submitting host); 8 when the map was abandoned,
cancelled or ended while the runner waited for its monitor. These
statuses, and :func:`~gridmap_core.wire.exits.describe_exit` that reads them back, are
in :mod:`gridmap_core.wire.exits`, which the backends that start runners import too.

A monitor that stops answering is watched through the map's session directory (the
key file's): one alive but out of reach is given up on at ``--give-up`` seconds as
always; for one that is gone the job runs on, or its result is kept, until a new
monitor serves the map or ``--grace`` seconds have passed since the last answer
(:mod:`gridmap_core.node.monitor_watch`, :mod:`gridmap_core.node.giving_up`).

This module holds the runner's command line and its course from fetch to result; the
conversation with the monitor is in :mod:`gridmap_core.node.link`, the heartbeats in
:mod:`gridmap_core.node.heartbeats`, and ending the runner from any thread in
:mod:`gridmap_core.node.ending`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gridmap_core.model.node_imports import add_search_path, explain_missing_module
from gridmap_core.node.ending import end_runner
from gridmap_core.node.heartbeats import HeartbeatThread
from gridmap_core.node.job_process import JobProcessDied, run_forked
from gridmap_core.node.link import Link
from gridmap_core.node.link import Stopped as Stopped
from gridmap_core.node.monitor_watch import MonitorWatch
from gridmap_core.transports import DEFAULT_TRANSPORT, load_transport, with_curve_keys
from gridmap_core.wire.exits import (
    EXIT_JOB_DIED,
    EXIT_LOST,
    EXIT_MAP_ENDED,
    EXIT_NOT_SHARED,
    EXIT_SETUP,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    describe_exit,
)
from gridmap_core.wire.messages import decode_next, encode_error, encode_value, load_task, open_task
from gridmap_core.wire.protocol import Codec, Kind, Message, Oversized, read_key_file

__all__ = [
    "EXIT_JOB_DIED", "EXIT_LOST", "EXIT_MAP_ENDED", "EXIT_NOT_SHARED", "EXIT_SETUP",
    "EXIT_STOPPED", "EXIT_UNREACHABLE", "describe_exit", "main",
]

logger = logging.getLogger("gridmap.runner")

# How long a runner looks for the map's session directory before it concludes that
# this node does not see temp_dir: a network file system may show a directory made
# on another host a moment late.
SESSION_WAIT = 3.0
# Variables naming a temporary directory, copied from the submitting process with its
# environment: one that does not exist on this node is dropped, so the job's tools use
# the node's own instead of failing.
TEMP_VARIABLES = ("TMPDIR", "TMP", "TEMP")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gridmap_core.node.runner",
        description="Run one gridmap job: fetch it from the monitor, run it, send the result.",
    )
    parser.add_argument("--transport", default=DEFAULT_TRANSPORT)
    parser.add_argument("--transport-factory", help="module:attribute of the transport")
    parser.add_argument("--address", required=True, help="where the monitor listens")
    parser.add_argument("--transport-options", default="{}", help="JSON object")
    parser.add_argument("--map", required=True, dest="map_id")
    parser.add_argument("--key-file", required=True, help="file holding the map's keys (0600)")
    parser.add_argument("--task", required=True, type=int)
    parser.add_argument("--attempt", type=int, default=0)
    parser.add_argument("--index-var", help="array element number variable (SGE_TASK_ID)")
    parser.add_argument("--first-index", type=int, default=1)
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between beats")
    parser.add_argument("--give-up", type=float, default=90.0,
                        help="seconds without an answer before giving up on the monitor")
    parser.add_argument("--grace", type=float, default=600.0,
                        help="seconds after the monitor's last answer that the runner waits "
                        "for a monitor that is gone (MONITOR_GRACE)")
    parser.add_argument("--max-bytes", type=int, default=None)
    parser.add_argument("--environment", metavar="FILE",
                        help="JSON object of environment variables to set before the job "
                        "runs (values a scheduler cannot pass, such as ones with '=')")
    return parser.parse_args(argv)


def _task_id(args: argparse.Namespace) -> int:
    if not args.index_var:
        return int(args.task)
    raw = os.environ.get(args.index_var, "")
    try:
        index = int(raw)
    except ValueError:
        raise ValueError(f"${args.index_var}={raw!r} is not an array element number") from None
    return int(args.task) + index - int(args.first_index)


def _unseen_session(key_file: str, wait: float = SESSION_WAIT) -> str:
    """Why this node does not see the map's session directory (the key file's, which
    the monitor made in temp_dir just before it submitted the job), or "" when it does.
    The directory's random name is the marker: no directory of a node's own has it."""
    directory = os.path.dirname(os.path.abspath(key_file))
    deadline = time.monotonic() + wait
    while not os.path.isdir(directory):
        if time.monotonic() >= deadline:
            return (f"the map's session directory {directory} does not exist on this node "
                    f"({socket.gethostname()}): temp_dir {os.path.dirname(directory)} is "
                    "not shared with the submitting host. Set DEFAULT_TEMP_DIR (or pass "
                    "temp_dir=) to a directory that every node mounts at the same path, "
                    "such as one in your home directory")
        time.sleep(0.5)
    return ""


def _private_logs() -> None:
    """Make this runner's log files (its stdout and stderr, where they are files of
    this user's) readable by this user alone: a scheduler creates them under the job's
    umask, often 0644, and they hold what the job prints and the tail of its errors."""
    for descriptor in (1, 2):
        try:
            info = os.fstat(descriptor)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() \
                    and stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(descriptor, stat.S_IMODE(info.st_mode) & 0o700)
        except OSError as error:  # a closed stream, a file system without modes
            logger.debug("could not make log descriptor %d private: %s", descriptor, error)


def _drop_missing_temp_dirs() -> None:
    """Unset TMPDIR, TMP and TEMP where they name no directory of this node: copied
    from the submitting host, they may name its own private temporary directory."""
    for name in TEMP_VARIABLES:
        value = os.environ.get(name)
        if value and not os.path.isdir(value):
            logger.info("%s=%s does not exist on this node: unset, the job uses the "
                        "node's own temporary directory", name, value)
            del os.environ[name]


def _run(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], host: str) -> bytes:
    """Call the job and return its RESULT payload, whatever it does."""
    try:
        value = function(*args, **kwargs)
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: report them
        # The traceback starts in the job's own code, not in this frame.
        below = error.__traceback__.tb_next if error.__traceback__ else None
        return encode_error(error.with_traceback(below), host)
    try:
        return encode_value(value, host)
    except Exception as error:  # the value cannot be pickled
        return encode_error(error, host)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="gridmap runner %(asctime)s %(levelname)s %(message)s",
    )
    args = _parse(argv)
    _private_logs()
    unseen = _unseen_session(args.key_file)
    if unseen:
        logger.error("%s", unseen)
        return EXIT_NOT_SHARED
    watch = MonitorWatch(os.path.dirname(os.path.abspath(args.key_file)), args.grace)
    ended = watch.end_mark()
    if ended is not None:  # an array element started after its map was given up
        logger.error("the map was %s: nothing to run", ended)
        return EXIT_MAP_ENDED
    try:
        task_id = _task_id(args)
        if args.environment:
            with open(args.environment, encoding="utf-8") as handle:
                os.environ.update(json.load(handle))
        _drop_missing_temp_dirs()
        keys = read_key_file(args.key_file)
        # With the factory's dotted path, the plugin manager is not even imported.
        transport = load_transport(args.transport, "runner --transport",
                                   args.transport_factory or None)
        # The map's CURVE keys come from the key file, never the command line; a
        # transport that encrypts with them (zmq) gets them, on every reconnection too.
        options: dict[str, Any] = with_curve_keys(
            transport, json.loads(args.transport_options), keys.curve)
        client = transport.connect(args.address, options)
    except Exception as error:
        logger.error("cannot start: %s", error)
        return EXIT_SETUP
    codec = Codec(keys.mac, args.map_id, **({} if args.max_bytes is None else
                                       {"max_bytes": args.max_bytes}))
    # A new monitor (gridmap attach) names its address in the session directory; the
    # link follows it there, through the same transport with the same options.
    link = Link(client, codec, task_id, args.attempt, watch=watch, address=args.address,
                transport=args.transport,
                connect=lambda address: transport.connect(address, options))
    host = socket.gethostname()
    request_timeout = max(30.0, 3 * args.heartbeat)
    logger.info("task %d attempt %d on %s: fetching from %s", task_id, args.attempt, host,
                args.address)
    reply = link.call(Kind.FETCH, b"", give_up=args.give_up, timeout=request_timeout)
    if reply is None:
        logger.error(
            "cannot reach the monitor at %s (transport %s). Check that compute nodes can "
            "connect to the submitting host (firewall, address), or set GRIDMAP_TRANSPORT "
            "to a transport that needs no connection to it (`gridmap doctor` advises).",
            link.address, args.transport,
        )
        return EXIT_UNREACHABLE
    if reply.header.kind is not Kind.TASK:
        reason = bytes(reply.payload).decode("utf-8", "replace")
        logger.info("the monitor says stop: %s", reason or "no reason given")
        return EXIT_STOPPED
    # Held in a list the task's run empties: the arguments' bytes can be large.
    pending: list[memoryview] = [reply.payload]
    del reply
    while True:
        answer = _run_task(link, pending, host, args, request_timeout)
        if answer is None:
            logger.error("the result could not be delivered to the monitor at %s",
                         link.address)
            return EXIT_LOST
        logger.info("task %d done", link.task)
        if answer.header.kind is not Kind.TASK:
            break
        try:
            link.task, link.attempt, payload = decode_next(answer.payload)
        except ValueError as error:
            logger.error("the monitor's next task is unreadable: %s", error)
            break
        pending.append(payload)
        del answer, payload
        logger.info("task %d attempt %d: taken on from the monitor", link.task, link.attempt)
    link.client.close()
    return 0


def _prepare(payload: memoryview, host: str, max_bytes: int) -> Callable[[], bytes]:
    """Decode a TASK payload in its working directory, with the submitting process's
    ``sys.path`` entries in front of this one's: a call that runs the job and returns
    its RESULT payload."""
    setting, body = open_task(payload)
    try:
        os.chdir(setting.working_dir)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            error.errno, f"the job's working directory does not exist on host {host} "
            "(jobs run in the submitting process's working directory unless given "
            "working_dir=): run the map from a directory every node mounts at the same "
            "path, or give the jobs such a working_dir", setting.working_dir) from None
    add_search_path(setting.search_path)
    try:
        task = load_task(setting, body)
    except ModuleNotFoundError as error:
        raise explain_missing_module(error, setting.search_path, host) from error
    return functools.partial(_run_within, max_bytes, task.function, task.args,
                             dict(task.kwargs), host)


def _run_within(max_bytes: int, function: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any], host: str) -> bytes:
    """:func:`_run`, with a payload too large for the transport replaced by an error
    (before it crosses the pipe to the runner)."""
    payload = _run(function, args, kwargs, host)
    if len(payload) > max_bytes:
        too_big = Oversized(f"the job's result is {len(payload)} bytes once pickled, over "
                            f"the limit of {max_bytes} bytes (transport max_bytes)")
        payload = encode_error(too_big, host)
    return payload


def _run_task(link: Link, pending: list[memoryview], host: str,
              args: argparse.Namespace, request_timeout: float) -> Message | None:
    """Run the task whose TASK payload is ``pending``'s only item, and deliver its
    result; the monitor's answer, None if it never came."""
    heartbeats = HeartbeatThread(link, args.heartbeat, args.give_up)
    heartbeats.start()
    payload: bytes | bytearray
    try:
        job = [_prepare(pending.pop(), host, link.codec.max_bytes)]
    except BaseException as error:
        logger.error("cannot prepare the job: %s", error)
        payload = encode_error(error, host)
    else:
        try:
            payload = run_forked(job, heartbeats.watch,
                                 _holding(heartbeats.busy, *_watch_locks(link)))
        except JobProcessDied as death:
            end_runner(EXIT_JOB_DIED, str(death))
    if len(payload) > link.codec.max_bytes:  # checked by the job's process already
        payload = encode_error(Oversized(
            f"the job's result is {len(payload)} bytes, over the limit of "
            f"{link.codec.max_bytes} bytes (transport max_bytes)"), host)
    # Heartbeats end before the result goes: once the monitor has it, a heartbeat
    # still under this task's id would be answered STOP ("this job has ended").
    heartbeats.stop()
    for stream in (sys.stdout, sys.stderr):  # what the job printed, into its log now
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    heartbeats.last_lines(request_timeout)
    return link.call(Kind.RESULT, payload, give_up=args.give_up, timeout=request_timeout)


def _watch_locks(link: Link) -> list[threading.Lock]:
    """The lock the link's watch holds while it looks at the session directory."""
    return [link.watch.busy] if link.watch is not None else []


@contextlib.contextmanager
def _holding(*locks: threading.Lock) -> Iterator[None]:
    """Hold every one of ``locks``, in order: the threads that take them (heartbeats,
    the watch) are then between two steps while the job's process is forked."""
    with contextlib.ExitStack() as stack:
        for lock in locks:
            stack.enter_context(lock)
        yield


if __name__ == "__main__":
    sys.exit(main())
