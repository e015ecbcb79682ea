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

from gridmap_core.job import RemoteError

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


def _reply(
    conn: Connection,
    final: bool,
    batch_id: int,
    indices: Sequence[int],
    values: list[Any],
    failures: list[tuple[int, BaseException, str | None]],
) -> None:
    try:
        data = dumps((final, batch_id, indices, values, failures))
    except Exception:
        # One value cannot be pickled: report that job as failed, keep the others.
        kept_indices, kept_values = [], []
        for index, value in zip(indices, values, strict=True):
            try:
                dumps(value)
            except Exception as error:
                failures.append(
                    (
                        index,
                        RemoteError(
                            f"the job's return value ({type(value).__name__}) cannot be pickled: "
                            f"{error}"
                        ),
                        None,
                    )
                )
            else:
                kept_indices.append(index)
                kept_values.append(value)
        data = dumps((final, batch_id, kept_indices, kept_values, failures))
    conn.send_bytes(data)


def run_chunk(
    conn: Connection,
    slot: Any,
    function: Any,
    spec: Any,
    batch_id: int,
    indices: Sequence[int],
    args: Sequence[Any],
    kwargs: Sequence[Any] | None,
) -> None:
    """Run the calls of one chunk, replying in parts at least every FLUSH_INTERVAL."""
    done: list[int] = []
    values: list[Any] = []
    failures: list[tuple[int, BaseException, str | None]] = []
    last_flush = time.monotonic()
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
            now = time.monotonic()
            if now - last_flush > FLUSH_INTERVAL and position + 1 < len(indices):
                _reply(conn, False, batch_id, done, values, failures)
                done, values, failures = [], [], []
                last_flush = now
    slot[SLOT_INDEX] = -1
    if not failures and len(done) == len(indices) and isinstance(indices, range):
        _reply(conn, True, batch_id, indices, values, failures)
    else:
        _reply(conn, True, batch_id, done, values, failures)


def main(conn: Connection, slot: Any) -> None:
    """Worker loop: one message in (a chunk, or None to stop), replies out."""
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
        new_specs, spec_key, batch_id, indices, args, kwargs = message
        for key, spec_bytes in new_specs:
            try:
                spec = pickle.loads(spec_bytes)
                specs[key] = (spec, spec.function)
            except BaseException as error:
                specs[key] = (None, error)
        spec, function = specs[spec_key]
        if spec is None:
            load_error: BaseException = function
            text = "".join(traceback.format_exception(load_error))
            conn.send_bytes(
                dumps(
                    (
                        True,
                        batch_id,
                        [],
                        [],
                        [(index, _portable_exception(load_error), text) for index in indices],
                    )
                )
            )
            continue
        run_chunk(conn, slot, function, spec, batch_id, indices, args, kwargs)
