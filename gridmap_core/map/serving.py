"""Serving the runners: the monitor's answers to their FETCH, HEARTBEAT and RESULT."""

from __future__ import annotations

import array
import contextlib
import dataclasses
import logging
import time
from typing import Any

from gridmap_core.backend import DeathKind, JobSpec
from gridmap_core.map.job_watch import JobWatch
from gridmap_core.map.liveness import Limits, idle_warning, is_idle, judge_heartbeat
from gridmap_core.map.tasks import RUNNING, Task, TaskTable, failure_of, job_name
from gridmap_core.transports import Endpoint
from gridmap_core.wire.messages import (
    Heartbeat,
    decode_heartbeat,
    decode_result,
    encode_next,
    encode_task,
)
from gridmap_core.wire.protocol import FROM_RUNNER, Codec, Kind, Message, ProtocolError

__all__ = ["Server"]
# One logger for the whole monitor, whichever module speaks: the name users (and
# tests) configure.
logger = logging.getLogger("gridmap_core.map.monitor")


def _memory_limit_cause(exception: BaseException | None, spec: JobSpec) -> str | None:
    """Under an ``h_vmem`` limit (a ``ulimit -v`` on Grid Engine), running out of memory
    shows as a MemoryError in the job rather than a kill: say that it was the limit."""
    limit = spec.resources.h_vmem
    if isinstance(exception, MemoryError) and limit:
        return (f"out of memory: the job hit its memory limit "
                f"h_vmem={spec.resources.h_vmem_text or limit}")
    return None


def _size(frames: list[memoryview]) -> int:
    """The bytes of a dropped message's frames (0 for a frame that is no buffer)."""
    size = 0
    for frame in frames:
        with contextlib.suppress(TypeError):
            size += memoryview(frame).nbytes
    return size


class Server:
    """Answers each message of a runner, on the monitor's thread: FETCH with the task,
    HEARTBEAT with ACK (or STOP, when the beat shows the job dead), RESULT with ACK (or,
    with REUSE_RUNNERS, the next queued task of the same request). A message that is
    forged, malformed or replayed is dropped.

    Only the task's current attempt counts. A message of an attempt that was
    superseded (the job was counted dead and resubmitted, or its task was taken by
    another runner) or of a task that has ended is a *late* one: it is answered STOP,
    and what it carries is ignored, so each job's result reaches its sink exactly once
    and a late result never replaces the accepted one. The monitor logs the first late
    message of each attempt, naming the job, the attempt and the host (a late runner
    that comes back after a network cut may have repeated the job's side effects). The
    one exception is a result retried by the runner whose result was accepted (the
    acknowledgement was lost): it is acknowledged again, and nothing more."""

    def __init__(self, endpoint: Endpoint, codec: Codec, table: TaskTable, watch: JobWatch,
                 limits: Limits) -> None:
        self.endpoint = endpoint
        self.codec = codec
        self.table = table
        self.watch = watch  # resumes a suspended task that speaks, resubmits the dead
        self.limits = limits
        self._spec_limits: dict[int, Limits] = {}  # spec key -> limits with its h_vmem
        self.dropped = 0  # messages refused: forged, malformed, replayed, …
        self.dropped_bytes = 0  # their frames' bytes, for the heap's trim (map/heap.py)
        # Per task id (ids are consecutive from 0): 1 + the attempt whose result was
        # accepted, 0 for none. Two bytes a task, so a retried result is told apart
        # from a late one for as long as the session lasts.
        self._accepted = array.array("H")
        # The names of tasks resubmitted after a death, for the log of their late
        # messages after they ended (by then the task and its batch are gone).
        self._names: dict[int, str] = {}
        self._told_late: set[tuple[int, int, bool]] = set()  # (task, attempt, is result)
        # Answers to results, held until the results are kept (release()).
        self.held: list[tuple[Any, Any]] = []

    def release(self) -> None:
        """Keep the results received since the last call for good (one commit for all
        of them), then answer their runners: a runner hears its result arrived only
        once no monitor's death can lose it."""
        if not self.held:
            return
        held, self.held = self.held, []
        self.table.record.commit()
        for token, frames in held:
            self.endpoint.reply(token, frames)

    def handle(self, token: Any, frames: list[memoryview]) -> None:
        """Check one request and answer it."""
        try:
            message = self.codec.decode(frames, expect=FROM_RUNNER)
        except ProtocolError as error:
            self.dropped_bytes += _size(frames)
            self._drop(str(error))
            return
        if not self.table.guard.accept(message.header):
            self.dropped_bytes += _size(frames)
            self._drop(f"replayed {message.header.kind.value} for task {message.header.task_id}")
            return
        header = message.header
        task = self.table.live.get(header.task_id)  # one dict read: atomic, no lock needed
        if task is None:
            self._after_end(token, message)
            return
        if header.attempt != task.attempt:
            self._reply(token, message, Kind.STOP,
                        f"superseded by attempt {task.attempt}".encode())
            if header.attempt < task.attempt:
                self._tell_late(message, job_name(task), f"attempt {task.attempt} has replaced "
                                f"it and {'runs' if task.state == RUNNING else 'waits to start'}")
            return
        if task.resubmits and task.id not in self._names:
            self._names[task.id] = job_name(task)
        now = time.monotonic()
        if task.suspended_at is not None:  # it speaks: it was resumed
            self.watch.resume(task, now)
        previous, task.last_seen = task.last_seen, now
        if header.kind is Kind.FETCH:
            if task.state != RUNNING:  # not a repeated fetch of the same attempt
                task.state = RUNNING
                task.batch.sink.started(task.index, "", task.job_id)
                self.table.record.started(task, task.scheduler_host)
            self._reply(token, message, Kind.TASK, self._task_payload(task))
        elif header.kind is Kind.HEARTBEAT:
            self._heartbeat(token, message, task, previous)
        else:
            self._result(token, message, task)

    def _after_end(self, token: Any, message: Message) -> None:
        """A message for a task that is no longer live: ended, or never known."""
        header = message.header
        accepted = self._accepted_attempt(header.task_id)
        if header.kind is Kind.RESULT and accepted == header.attempt:
            # The runner retried a result whose acknowledgement it lost: already have it.
            self._reply(token, message, Kind.ACK)
        else:
            self._reply(token, message, Kind.STOP, b"this job has ended")
            # A straggler of the attempt whose result was accepted is no late runner.
            if header.task_id in self.table.ended and accepted != header.attempt:
                ended = ("the job has ended without a result" if accepted is None
                         else f"the job's result came from attempt {accepted}")
                self._tell_late(message, self._names.get(header.task_id, ""), ended)

    def _accepted_attempt(self, task_id: int) -> int | None:
        if 0 <= task_id < len(self._accepted) and self._accepted[task_id]:
            return self._accepted[task_id] - 1
        return None

    def _record_accepted(self, task: Task) -> None:
        self.accepted_before(task.id, task.attempt)
        if task.resubmits and task.id not in self._names:
            self._names[task.id] = job_name(task)

    def accepted_before(self, task_id: int, attempt: int) -> None:
        """The result of ``task_id``'s ``attempt`` was accepted (by this monitor, or
        by the one that served the map before it): a retry of it is acknowledged."""
        if task_id >= len(self._accepted):
            self._accepted.frombytes(bytes(2 * (task_id + 1 - len(self._accepted))))
        self._accepted[task_id] = min(attempt + 1, 0xFFFF)

    def _tell_late(self, message: Message, name: str, now: str) -> None:
        """Log the first late message of a task's attempt: what it was, from where, and
        that it was ignored; ``now`` says what became of the job. A FETCH (a superseded
        scheduler job that started anyway, having run nothing) is routine: INFO. A
        heartbeat or a result comes from a runner that ran the job after its attempt
        was given up: WARNING."""
        header = message.header
        is_result = header.kind is Kind.RESULT
        key = (header.task_id, header.attempt, is_result)
        if key in self._told_late:
            return
        self._told_late.add(key)
        job = f"{name} (task {header.task_id})" if name else f"task {header.task_id}"
        if header.kind is Kind.FETCH:
            logger.info("%s attempt %d asked for its task after it was superseded (%s); "
                        "told to stop", job, header.attempt, now)
            return
        host = self._late_host(message) or "an unknown host"
        if is_result:
            logger.warning("ignored the late result of %s attempt %d from %s: that attempt "
                           "was given up and %s; its runner is told to stop", job,
                           header.attempt, host, now)
        else:
            logger.warning("a heartbeat of %s attempt %d came from %s after that attempt "
                           "was given up (%s); its runner is told to stop. That copy of the "
                           "job ran on out of the monitor's sight, so the job's side effects "
                           "may have happened twice", job, header.attempt, host, now)

    @staticmethod
    def _late_host(message: Message) -> str:
        """The host a late heartbeat or result names (the message is authentic)."""
        try:
            if message.header.kind is Kind.HEARTBEAT:
                return decode_heartbeat(message.payload).host_name
            return decode_result(message.payload).host_name
        except Exception:  # a late message's host is worth a log line, not a failure
            return ""

    def _reply(self, token: Any, message: Message, kind: Kind, payload: bytes = b"") -> None:
        self.endpoint.reply(token, self.codec.reply(message.header, kind, payload))

    def _task_payload(self, task: Task) -> bytes:
        batch = task.batch
        kwargs = batch.kwargs[task.index] if batch.kwargs is not None else None
        return encode_task(self.table.functions[batch.spec.key], batch.args[task.index],
                           kwargs, batch.spec.working_dir)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        # Logged at debug level only after the first few: a flood must not fill the log.
        level = logging.WARNING if self.dropped <= 10 else logging.DEBUG
        logger.log(level, "dropped a message: %s", reason)

    def _heartbeat(self, token: Any, message: Message, task: Task, previous: float) -> None:
        """A heartbeat, received at ``task.last_seen``; the task's message before it
        came at ``previous``."""
        try:
            beat = decode_heartbeat(message.payload)
        except ValueError as error:
            self._drop(f"unreadable heartbeat: {error}")
            self._reply(token, message, Kind.ACK)
            return
        task.state = RUNNING
        task.host_name = beat.host_name
        task.heart_beat = beat.as_dict()
        task.track_cpu.append(beat.cpu)
        task.track_mem.append(beat.memory / 2**20)
        limits = self._limits_for(task.batch.spec)
        idle_for = self._idle_for(task, beat, limits, previous)
        verdict = judge_heartbeat(beat, idle_for, limits)
        if verdict is not None:
            self._reply(token, message, Kind.STOP, verdict.cause.encode())
            self.watch.died(task, verdict)
            return
        self._reply(token, message, Kind.ACK)
        warning = idle_warning(idle_for, limits)
        if warning is not None:
            # Observers (the status page) see it with the heartbeat, as "warning".
            task.heart_beat["warning"] = warning
            if not task.idle_warned:
                task.idle_warned = True
                logger.warning("%s (job %s) is %s", job_name(task), task.job_id or "?",
                               warning)
        task.batch.sink.heartbeat(task.index, task.heart_beat)

    @staticmethod
    def _idle_for(task: Task, beat: Heartbeat, limits: Limits, previous: float) -> float:
        """Seconds the task has been idle, in time (not heartbeats): a beat's CPU covers
        the time since the task's previous message, so an idle run starts there."""
        if not is_idle(beat, limits, task.last_seen - previous if previous else 0.0):
            task.idle_since = None
            task.idle_warned = False
            return 0.0
        if task.idle_since is None:
            task.idle_since = previous or task.last_seen
        return task.last_seen - task.idle_since

    def _limits_for(self, spec: JobSpec) -> Limits:
        limit = spec.resources.h_vmem
        if limit is None:
            return self.limits
        limits = self._spec_limits.get(spec.key)
        if limits is None:
            limits = self._spec_limits[spec.key] = dataclasses.replace(
                self.limits, memory_limit=limit)
        return limits

    def _result(self, token: Any, message: Message, task: Task) -> None:
        outcome = decode_result(message.payload)
        host = outcome.host_name or task.host_name
        # Kept before the runner hears that it arrived: a monitor that dies from here
        # on loses nothing (the runner would otherwise retry it, to no one).
        self.table.record.result(task, message.payload, ok=outcome.ok, host=host)
        self.table.end(task)
        self._record_accepted(task)
        following = self._take_for(task, host) if self.table.takeable else None
        # Answered once the result is kept for good: see release().
        if following is None:
            self.held.append((token, self.codec.reply(message.header, Kind.ACK, b"")))
        else:
            self.held.append((token, self.codec.reply(
                message.header, Kind.TASK,
                encode_next(following.id, following.attempt, self._task_payload(following)))))
        sink = task.batch.sink
        if outcome.ok:
            sink.succeeded([task.index], [outcome.value], host)
        else:
            self.table.failures += 1
            cause = _memory_limit_cause(outcome.exception, task.batch.spec)
            sink.failed(task.index, failure_of(task, outcome.exception, outcome.traceback,
                                               cause, host,
                                               DeathKind.OUT_OF_MEMORY if cause else None))
        if following is not None:
            following.batch.sink.started(following.index, following.host_name,
                                         following.job_id)
            self.table.record.started(following, host)

    def _take_for(self, done: Task, host: str) -> Task | None:
        """A queued task of the same request for the runner that ran ``done``, now
        moved to that runner's scheduler job (see :meth:`TaskTable.take`) and running;
        None when there is none (or it must not: the session is closing)."""
        if self.table.closed or not done.job_id:
            return None
        task = self.table.take(done)
        if task is None:
            return None
        task.state = RUNNING
        task.host_name = host
        task.last_seen = time.monotonic()
        task.running_since = done.running_since or task.last_seen
        return task
