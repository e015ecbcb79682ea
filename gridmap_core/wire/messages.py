"""What the runner and the monitor put in the payloads of protocol messages.

The codec (:mod:`gridmap_core.wire.protocol`) authenticates a payload before anyone reads
it; this module only says what the bytes mean:

* a TASK carries, in JSON, the working directory and the submitting process's own
  ``sys.path`` entries (read before anything is unpickled, so the node can import
  the modules the pickles name), then the pickled function (pickled once per batch,
  then reused) and the arguments;
* a HEARTBEAT carries JSON, never pickle: CPU, memory, host, process status and the
  tail of the job's log;
* a RESULT carries the pickled value, or the exception with its formatted traceback.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
import traceback as traceback_module
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from gridmap_core.model.node_imports import search_path
from gridmap_core.model.serialization import PROTOCOL, dumps
from gridmap_core.wire.protocol import parse_json

__all__ = [
    "Heartbeat",
    "Outcome",
    "Task",
    "decode_heartbeat",
    "decode_result",
    "decode_task",
    "encode_error",
    "encode_heartbeat",
    "encode_task",
    "encode_value",
    "open_task",
]

MAX_LOG_TAIL = 4096  # characters of log a heartbeat carries


@dataclass(frozen=True)
class Task:
    """One call to run: ``function(*args, **kwargs)`` in ``working_dir``, with the
    submitting process's ``search_path`` (its own ``sys.path`` entries)."""

    function: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    working_dir: str
    search_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSetting:
    """What a TASK says before its pickles: where to run, where modules are."""

    working_dir: str
    search_path: tuple[str, ...]


_TASK_MAGIC = b"GMT1"
_TASK_HEAD = struct.Struct("!4sI")  # magic, then the length of the JSON setting


def encode_task(function_bytes: bytes, args: tuple[Any, ...],
                kwargs: Mapping[str, Any] | None, working_dir: str) -> bytes:
    """The TASK payload; ``function_bytes`` is :func:`~.serialization.dumps` of the
    function, made once per batch. The submitting process's ``sys.path`` entries go
    with it (see :mod:`~.node_imports`)."""
    setting = json.dumps({"working_dir": working_dir, "search_path": search_path()},
                         separators=(",", ":")).encode()
    body = dumps((function_bytes, tuple(args), dict(kwargs or {})))
    return b"".join((_TASK_HEAD.pack(_TASK_MAGIC, len(setting)), setting, body))


def open_task(payload: bytes | memoryview) -> tuple[TaskSetting, memoryview]:
    """A TASK payload's setting, and its pickled part, not yet unpickled (for
    :func:`load_task` once the search path is in place). ValueError if it is not a
    TASK payload."""
    view = memoryview(payload)
    if len(view) < _TASK_HEAD.size:
        raise ValueError(f"a TASK payload of {len(view)} bytes is too short")
    magic, size = _TASK_HEAD.unpack_from(view)
    if magic != _TASK_MAGIC:
        raise ValueError("not a TASK payload of this version of gridmap (the submitting "
                         "host and the node must run the same gridmap)")
    fields = parse_json(str(view[_TASK_HEAD.size:_TASK_HEAD.size + size], "utf-8"))
    if not isinstance(fields, dict) or not isinstance(fields.get("working_dir"), str):
        raise ValueError("a TASK payload's setting lacks its working directory")
    entries = fields.get("search_path", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ValueError("a TASK payload's search path is not a list of strings")
    return TaskSetting(fields["working_dir"], tuple(entries)), view[_TASK_HEAD.size + size:]


def load_task(setting: TaskSetting, body: memoryview) -> Task:
    """Unpickle the function and arguments of a TASK opened by :func:`open_task`."""
    function_bytes, args, kwargs = pickle.loads(body)
    return Task(pickle.loads(function_bytes), args, kwargs, setting.working_dir,
                setting.search_path)


_NEXT = struct.Struct("!QI")  # the next task's id and attempt, before its TASK payload


def encode_next(task_id: int, attempt: int, task_payload: bytes) -> bytes:
    """The TASK payload that answers a RESULT: another job for the same runner."""
    return _NEXT.pack(task_id, attempt) + task_payload


def decode_next(payload: bytes | memoryview) -> tuple[int, int, memoryview]:
    """The next task's id, attempt and TASK payload (authenticated by the caller)."""
    view = memoryview(payload)
    if len(view) < _NEXT.size:
        raise ValueError(f"a next-task payload of {len(view)} bytes is too short")
    task_id, attempt = _NEXT.unpack_from(view)
    return task_id, attempt, view[_NEXT.size:]


def decode_task(payload: bytes | memoryview) -> Task:
    """Open a TASK payload (authenticated by the caller), here as it is: the runner
    puts its search path in place before it unpickles (:func:`open_task`)."""
    return load_task(*open_task(payload))


class Heartbeat(NamedTuple):
    """A running job's health: CPU percent since the last beat (100 = one core), RSS of
    its process tree in bytes, its host, the status of its main process
    (``"sleeping"``, ``"running"``, …) and the tail of its log.

    A NamedTuple, not a frozen dataclass: the monitor builds one per heartbeat, and
    this is several times cheaper to create.
    """

    cpu: float
    memory: int
    host_name: str
    status: str = ""
    processes: int = 1
    log_tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The form the ``gridmap_job_heartbeat`` hook and ``Job.heart_beat`` carry."""
        return self._asdict()


def encode_heartbeat(beat: Heartbeat) -> bytes:
    return json.dumps(beat.as_dict(), separators=(",", ":")).encode()


def decode_heartbeat(payload: bytes | memoryview) -> Heartbeat:
    """Parse a HEARTBEAT payload; ValueError if it is not one."""
    fields = parse_json(str(payload, "utf-8"))  # decoding a view: no copy to bytes
    if not isinstance(fields, dict):
        raise ValueError("heartbeat is not a JSON object")
    cpu: Any = fields.get("cpu")
    memory: Any = fields.get("memory")
    processes: Any = fields.get("processes", 1)
    # type() and not isinstance(): true is an int to Python, not a memory size to us
    if type(cpu) not in (int, float) or not math.isfinite(cpu) or type(memory) is not int:
        raise ValueError("heartbeat lacks numeric cpu and memory")
    if type(processes) is not int:
        raise ValueError("heartbeat's process count is not a whole number")
    return Heartbeat(
        cpu=float(cpu),
        memory=memory,
        host_name=str(fields.get("host_name", ""))[:255],
        status=str(fields.get("status", ""))[:32],
        processes=processes,
        log_tail=str(fields.get("log_tail", ""))[-MAX_LOG_TAIL:],
    )


@dataclass(frozen=True)
class Outcome:
    """A RESULT, opened: the value, or the exception and its traceback."""

    ok: bool
    value: Any = None
    exception: BaseException | None = None
    traceback: str | None = None
    host_name: str = ""


def encode_value(value: Any, host_name: str) -> bytes:
    """The RESULT payload of a job that returned; SerializationError if unpicklable."""
    return dumps((True, value, None, host_name))


def encode_error(error: BaseException, host_name: str) -> bytes:
    """The RESULT payload of a job that raised, with its traceback. An exception that
    cannot be pickled travels as a :class:`RemoteError` naming its type."""
    text = "".join(traceback_module.format_exception(error))
    try:
        payload = dumps((False, error, text, host_name))
        pickle.loads(payload)  # some exceptions pickle but cannot be rebuilt
        return payload
    except Exception:
        from gridmap_core.model.job import (
            RemoteError,  # here: a runner need not import the Job machinery
        )

        stand_in = RemoteError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")
        return pickle.dumps((False, stand_in, text, host_name), protocol=PROTOCOL)


def decode_result(payload: bytes | memoryview) -> Outcome:
    """Open a RESULT payload (authenticated by the caller). A value that cannot be
    unpickled here (a module missing on this host) becomes a RemoteError outcome."""
    try:
        ok, value, text, host_name = pickle.loads(payload)
    except Exception as error:
        from gridmap_core.model.job import RemoteError

        stand_in = RemoteError(
            f"the job's result could not be unpickled on the submitting host: "
            f"{type(error).__name__}: {error}"
        )
        return Outcome(False, exception=stand_in, traceback=None)
    if ok:
        return Outcome(True, value=value, host_name=str(host_name))
    return Outcome(False, exception=value, traceback=text, host_name=str(host_name))
