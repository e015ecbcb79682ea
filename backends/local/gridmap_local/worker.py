"""What runs inside a local worker process: receive a chunk of calls, run them, reply.

Messages are pickled with the standard pickler where it can (fast, in C) and with
cloudpickle where it must (lambdas, closures). Function specs arrive once per worker,
cloudpickled, and are cached by key.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from gridmap_core.model.job import RemoteError

PROTOCOL = 5
# A partial reply goes back at least this often (seconds) while a chunk runs, so a
# worker that dies mid-chunk loses little finished work.
FLUSH_INTERVAL = 0.1
SLOT_BATCH, SLOT_INDEX = 0, 1


def dumps(obj: Any) -> bytes:
    """Pickle fast with the C pickler; fall back to cloudpickle for what it refuses."""
    try:
        return pickle.dumps(obj, protocol=PROTOCOL)
    except Exception:
        return cloudpickle.dumps(obj, protocol=PROTOCOL)  # type: ignore[no-any-return]


def _die_with_parent() -> None:
    # Linux only: the kernel sends SIGKILL to this worker when its parent dies, so a
    # killed submitting process leaves no worker behind even mid-job.
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        except Exception:
            pass


def _portable_exception(error: BaseException) -> BaseException:
    """The exception itself if it survives pickling both ways, else a RemoteError."""
    try:
        pickle.loads(dumps(error))
        return error
    except Exception:
        return RemoteError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")


class _Environment:
    """Applies a spec's working directory and environment for the calls of one chunk."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.saved_env: dict[str, str] | None = None
        self.saved_cwd: str | None = None

    def __enter__(self) -> None:
        spec = self.spec
        if spec.add_env or not spec.copy_env:
            self.saved_env = dict(os.environ)
            if not spec.copy_env:
                os.environ.clear()
            os.environ.update(spec.add_env or {})
        if spec.working_dir and spec.working_dir != os.getcwd():
            self.saved_cwd = os.getcwd()
            os.chdir(spec.working_dir)

    def __exit__(self, *exc: Any) -> None:
        if self.saved_env is not None:
            os.environ.clear()
            os.environ.update(self.saved_env)
        if self.saved_cwd is not None:
            os.chdir(self.saved_cwd)


Failures = list[tuple[int, BaseException, str | None]]


def _portable_part(part: tuple[int, Sequence[int], list[Any], Failures]) -> tuple[Any, ...]:
    """The part itself if it pickles; else the same with unpicklable values as failures."""
    try:
        dumps(part)
        return part
    except Exception:
        pass
    batch_id, indices, values, failures = part
    kept_indices, kept_values = [], []
    for index, value in zip(indices, values, strict=True):
        try:
            dumps(value)
        except Exception as error:
            kind = type(value).__name__
            message = f"the job's return value ({kind}) cannot be pickled: {error}"
            failures.append((index, RemoteError(message), None))
        else:
            kept_indices.append(index)
            kept_values.append(value)
    return (batch_id, kept_indices, kept_values, failures)


class Replies:
    """Results of the calls of one message, sent back in parts.

    A part goes back at least every FLUSH_INTERVAL, so a worker that dies mid-chunk
    loses little finished work; the last one is marked final.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parts: dict[int, tuple[list[int], list[Any], Failures]] = {}
        self.last_flush = time.monotonic()
        self.flushes = 0

    def part(self, batch_id: int) -> tuple[list[int], list[Any], Failures]:
        part = self.parts.get(batch_id)
        if part is None:
            part = self.parts[batch_id] = ([], [], [])
        return part

    def due(self) -> bool:
        return time.monotonic() - self.last_flush > FLUSH_INTERVAL

    def flush(self, final: bool, whole: dict[int, range] | None = None) -> None:
        """Send what has been gathered. ``whole`` names segments that ran completely
        without failure, whose indices go back as a range, not a list."""
        parts = []
        for batch_id, (done, values, failures) in self.parts.items():
            if not done and not failures:
                continue  # its results went back in an earlier part
            indices: Sequence[int] = done
            if whole and batch_id in whole and not failures and len(done) == len(whole[batch_id]):
                indices = whole[batch_id]
            parts.append(_portable_part((batch_id, indices, values, failures)))
        try:
            data = pickle.dumps((final, parts), protocol=PROTOCOL)
        except Exception:
            data = dumps((final, parts))
        self.conn.send_bytes(data)
        self.parts = {}
        self.last_flush = time.monotonic()
        self.flushes += 1


def run_segment(
    replies: Replies,
    slot: Any,
    function: Any,
    spec: Any,
    batch_id: int,
    indices: Sequence[int],
    args: Sequence[Any],
    kwargs: Sequence[Any] | None,
) -> None:
    """Run the calls of one batch's segment, recording each outcome."""
    done, values, failures = replies.part(batch_id)
    slot[SLOT_BATCH] = batch_id
    with _Environment(spec):
        for position, index in enumerate(indices):
            slot[SLOT_INDEX] = index
            try:
                if kwargs is None:
                    value = function(*args[position])
                else:
                    value = function(*args[position], **kwargs[position])
            except BaseException as error:  # SystemExit too: the job failed, not the worker
                failures.append((index, _portable_exception(error), traceback.format_exc()))
            else:
                done.append(index)
                values.append(value)
            if replies.due():
                replies.flush(False)
                done, values, failures = replies.part(batch_id)
    slot[SLOT_INDEX] = -1


def main(conn: Connection, slot: Any) -> None:
    """Worker loop: one message in (segments of batches, or None to stop), replies out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    _die_with_parent()
    specs: dict[int, tuple[Any, Any]] = {}  # key -> (spec, function or load error)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        message = pickle.loads(data)
        if message is None:
            return
        new_specs, segments = message
        for key, spec_bytes in new_specs:
            try:
                spec = pickle.loads(spec_bytes)
                specs[key] = (spec, spec.function)
            except BaseException as error:
                specs[key] = (None, error)
        replies = Replies(conn)
        whole: dict[int, range] = {}
        for spec_key, batch_id, indices, args, kwargs in segments:
            spec, function = specs[spec_key]
            if spec is None:
                text = "".join(traceback.format_exception(function))
                load_error = _portable_exception(function)
                replies.part(batch_id)[2].extend((index, load_error, text) for index in indices)
                continue
            flushes = replies.flushes
            run_segment(replies, slot, function, spec, batch_id, indices, args, kwargs)
            if isinstance(indices, range) and replies.flushes == flushes:
                whole[batch_id] = indices  # nothing of it was sent early
        replies.flush(True, whole)
