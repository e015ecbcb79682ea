"""The monitor: serves jobs to runners, watches them, resubmits the dead.

:class:`MonitoredSession` is the :class:`~gridmap_core.backend.BackendSession` of
every backend that launches runners through a :class:`~gridmap_core.backend.scheduler.Scheduler`.
One thread owns the transport endpoint and all decisions: it answers FETCH with the
task, records heartbeats, takes results, polls the scheduler for all live jobs in
one call every CHECK_FREQUENCY seconds, and applies the rules of
:mod:`gridmap_core.map.liveness`. A dead job is resubmitted up to NUM_RESUBMITS times,
then reported failed with its cause of death; so every job ends.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmap_core.backend import Batch, DeathKind, Failure, JobSpec, SessionOptions
from gridmap_core.backend.scheduler import Launch, Scheduler, Status, runner_prefix
from gridmap_core.map.liveness import (
    Limits,
    Verdict,
    idle_warning,
    is_idle,
    judge_heartbeat,
    judge_silence,
    judge_status,
)
from gridmap_core.map.sessions import PREFIX as SESSION_PREFIX
from gridmap_core.map.sessions import mark_ended, record_submitter, remove_abandoned
from gridmap_core.model.serialization import dumps
from gridmap_core.plugins.types import TransportSpec
from gridmap_core.transports import (
    Endpoint,
    Transport,
    TransportError,
    load_transport,
    transport_spec,
)
from gridmap_core.wire.messages import (
    Heartbeat,
    decode_heartbeat,
    decode_result,
    encode_next,
    encode_task,
)
from gridmap_core.wire.protocol import (
    FROM_RUNNER,
    Codec,
    Kind,
    Message,
    ProtocolError,
    ReplayGuard,
    new_key,
    write_key_file,
)

__all__ = ["MonitoredSession"]
logger = logging.getLogger(__name__)

_QUEUED, _RUNNING, _ENDED = "queued", "running", "ended"
_TICK = 0.2  # longest the loop blocks, so stop requests and polls are seen quickly
_STALL = 1.0  # seconds of work in one go after which heartbeats queued meanwhile get grace
# Heartbeats kept per job for track_cpu/track_mem: the most recent 2,000 (5.5 hours
# at one beat per 10 s), so a long map's memory stays bounded.
MAX_TRACK = 2000


@dataclass(eq=False)
class _Task:
    """One job of a batch, across its attempts."""

    id: int
    batch: Batch
    index: int
    attempt: int = 0
    job_id: str = ""
    state: str = _QUEUED
    last_seen: float = 0.0  # monotonic time of its last message
    running_since: float | None = None  # when the scheduler first said running
    host_name: str = ""
    idle_since: float | None = None  # monotonic time from which its beats show it idle
    idle_warned: bool = False
    resubmits: int = 0
    track_cpu: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_TRACK))
    track_mem: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_TRACK))
    heart_beat: dict[str, Any] | None = None
    note: str = ""  # why the scheduler says it waits, as last told to its sink
    suspended_at: float | None = None  # when the scheduler was first seen suspending it


def _memory_limit_cause(exception: BaseException | None, spec: JobSpec) -> str | None:
    """Under an ``h_vmem`` limit (a ``ulimit -v`` on Grid Engine), running out of memory
    shows as a MemoryError in the job rather than a kill: say that it was the limit."""
    limit = spec.resources.h_vmem
    if isinstance(exception, MemoryError) and limit:
        return (f"out of memory: the job hit its memory limit "
                f"h_vmem={spec.resources.h_vmem_text or limit}")
    return None


def idle_limits(settings: Any) -> tuple[float, str]:
    """The idle limit in seconds, and the settings that gave it (empty for
    MAX_IDLE_TIME): MAX_IDLE_TIME, unless only the original's MAX_IDLE_HEARTBEATS was
    set, which counts heartbeats of HEARTBEAT_FREQUENCY seconds."""
    beats = settings["MAX_IDLE_HEARTBEATS"]
    if beats is not None and settings.sources.get("MAX_IDLE_TIME", "default") == "default":
        every = float(settings["HEARTBEAT_FREQUENCY"])
        seconds = max(0, int(beats)) * every
        return seconds, f"MAX_IDLE_HEARTBEATS={beats} x HEARTBEAT_FREQUENCY={every:g} = " \
                        f"{seconds:g} s"
    return float(settings["MAX_IDLE_TIME"]), ""


class MonitoredSession:
    """A backend session that runs each job through a runner and the monitor protocol.

    ``work_dir`` must be visible to the compute nodes (the key file and logs go in a
    private directory made inside it); ``python`` is the interpreter the runners use.
    """

    def __init__(self, scheduler: Scheduler, options: SessionOptions, *, work_dir: str,
                 python: str | None = None, name: str = "monitor") -> None:
        settings = options.settings
        self.scheduler = scheduler
        self.settings = settings
        self.map_id = f"map-{secrets.token_hex(8)}"
        self.heartbeat_every = float(settings["HEARTBEAT_FREQUENCY"])
        self.check_every = float(settings["CHECK_FREQUENCY"])
        self.max_resubmits = int(settings["NUM_RESUBMITS"])
        max_idle_time, idle_setting = idle_limits(settings)
        self.limits = Limits(
            max_silence=float(settings["MAX_TIME_BETWEEN_HEARTBEATS"]),
            idle_threshold=float(settings["IDLE_THRESHOLD"]),
            max_idle_time=max_idle_time,
            idle_setting=idle_setting,
        )
        self.transport_name = str(settings["TRANSPORT"])
        spec = transport_spec(self.transport_name, "setting TRANSPORT")
        transport = load_transport(self.transport_name, "setting TRANSPORT", spec.factory)
        self._remove_abandoned(work_dir)
        self.directory = self._make_directory(work_dir)
        try:
            key = self._open(transport, spec, settings)
        except BaseException:
            # Nothing of a session that could not start stays on disk: no key, no
            # directory.
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.codec = Codec(key, self.map_id)
        self.guard = ReplayGuard()
        # The runner imports the transport from where it was registered, without
        # reading every plugin's entry point: milliseconds paid once per job.
        self.runner = [
            *runner_prefix(python),
            "--transport", self.transport_name,
            *(["--transport-factory", spec.factory] if isinstance(spec.factory, str) else []),
            "--address", self.address,
            "--map", self.map_id,
            "--key-file", self.key_file,
            "--heartbeat", f"{self.heartbeat_every:g}",
            "--give-up", f"{self.limits.max_silence:g}",
        ]
        self._tasks: dict[int, _Task] = {}  # tasks not yet ended
        self._ended: set[int] = set()  # ids of ended tasks, to acknowledge retried results
        self._keep_logs = False  # a job asked for cleanup=False
        self.reuse_runners = bool(settings["REUSE_RUNNERS"])
        # Per spec key, tasks in submission order that a finishing runner may take
        # (those that started meanwhile are skipped as they come up).
        self._takeable: dict[int, list[_Task]] = {}
        self._superseded: list[str] = []  # scheduler jobs whose task a runner took
        self._next_cancel = 0.0
        # Silence is counted from here at the earliest: after the loop was busy for a
        # while (a slow scheduler poll), the heartbeats that queued up meanwhile have not
        # been read yet, and their jobs are not silent.
        self._grace_from = 0.0
        self._polled_at = 0.0  # when the last scheduler poll began
        self._next_id = 0
        self._functions: dict[int, bytes] = {}  # spec key -> pickled function
        self._spec_limits: dict[int, Limits] = {}  # spec key -> limits with its h_vmem
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poll_now = threading.Event()
        self._closed = False
        self._failures = 0
        self._notes_told: set[str] = set()
        self.dropped = 0  # messages refused: forged, malformed, replayed, …
        self._thread = threading.Thread(target=self._serve, name=f"gridmap-{name}",
                                        daemon=True)
        try:
            self._thread.start()
        except BaseException:
            self.endpoint.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def _open(self, transport: Transport, spec: TransportSpec, settings: Any) -> bytes:
        """Fill the session directory (the submitter's record, logs, the key) and start
        serving, with the options the transport builds from the settings; the map's key."""
        record_submitter(self.directory)
        self.log_dir = str(self.directory / "logs")
        os.mkdir(self.log_dir, 0o700)
        key = new_key()
        self.key_file = str(write_key_file(self.directory / "key", key))
        self.endpoint: Endpoint = transport.serve(spec.options_for(self.directory, settings))
        self.address = self.endpoint.address
        return key

    @staticmethod
    def _remove_abandoned(work_dir: str) -> None:
        """Remove the session directories of maps whose submitter on this host was
        killed before it could: they hold a key, and logs no one will read."""
        try:
            removed = remove_abandoned(Path(work_dir).expanduser())
        except Exception as error:  # tidying up must never stop a map
            logger.debug("could not look for abandoned session directories: %s", error)
            return
        if removed:
            logger.info("removed %d session director%s of maps whose submitting process "
                        "is gone: %s", len(removed), "y" if len(removed) == 1 else "ies",
                        ", ".join(str(path) for path in removed))

    @staticmethod
    def _make_directory(work_dir: str) -> Path:
        root = Path(work_dir).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(
                f"temp_dir {str(root)!r} does not exist. Set DEFAULT_TEMP_DIR (or pass "
                "temp_dir=) to a directory the compute nodes share with this host."
            )
        path = root / f"{SESSION_PREFIX}{secrets.token_hex(6)}"
        os.mkdir(path, 0o700)
        return path

    # -- submitting thread ---------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        indices = list(batch.sink.claim(0, len(batch)))
        if not indices:
            return
        if self._closed:
            raise RuntimeError("the session is closed")
        spec = batch.spec
        self._keep_logs = self._keep_logs or not spec.cleanup
        if spec.key not in self._functions:
            self._functions[spec.key] = dumps(spec.function)
        with self._lock:
            first = self._next_id
            self._next_id += len(indices)
            tasks = [_Task(first + n, batch, index) for n, index in enumerate(indices)]
            for task in tasks:
                self._tasks[task.id] = task
        try:
            ids = self.scheduler.launch(self._launch(spec, range(first, first + len(tasks)), 0))
        except BaseException:
            with self._lock:
                for task in tasks:
                    del self._tasks[task.id]
            raise
        with self._lock:
            for task, job_id in zip(tasks, ids, strict=True):
                task.job_id = job_id
            if self.reuse_runners and spec.resources.h_rt is None:
                self._takeable.setdefault(spec.key, []).extend(tasks)

    def _launch(self, spec: JobSpec, tasks: Sequence[int], attempt: int) -> Launch:
        return Launch(spec=spec, tasks=tasks, attempt=attempt, log_dir=self.log_dir,
                      runner=self.runner, name=spec.name)

    def poll_soon(self) -> None:
        """Have the monitor poll the scheduler now (a scheduler's hint; any thread)."""
        self._poll_now.set()

    def close(self, cancel: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        # The loop stops first, so the jobs cancelled below are not reported as dead.
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._lock:
            live = [t.job_id for t in self._tasks.values() if t.job_id]
            live += self._superseded
        try:
            if live:  # nothing may outlive the session, cancelled or not
                self.scheduler.cancel(live)
        finally:
            self.endpoint.close()
            self.scheduler.close()
            self._clean_up()

    def _clean_up(self) -> None:
        """Remove the key, and the logs unless a job failed or asked to keep them."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.key_file)
        if self._failures or self._keep_logs:
            mark_ended(self.directory)  # kept on purpose, not abandoned
            if self._failures:  # the place to look for why they failed
                logger.warning("%d %s failed; the jobs' logs are kept in %s", self._failures,
                               "job" if self._failures == 1 else "jobs", self.log_dir)
            else:
                logger.info("job logs are kept in %s", self.log_dir)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- the monitor's thread ------------------------------------------------------

    def _serve(self) -> None:
        next_poll = time.monotonic() + self.check_every
        next_sweep = time.monotonic() + 1.0
        while not self._stop.is_set():
            try:
                wait = min(_TICK, max(0.0, min(next_poll, next_sweep) - time.monotonic()))
                received = self.endpoint.receive(wait)
                if received is not None:
                    self._handle(*received)
                now = time.monotonic()
                if self._poll_now.is_set() or now >= next_poll:
                    self._poll_now.clear()
                    self._poll()
                    next_poll = time.monotonic() + self.check_every
                if time.monotonic() - now > _STALL:
                    self._grace_from = time.monotonic()
                    now = self._grace_from
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + 1.0
                if self._superseded and now >= self._next_cancel:
                    self._cancel_superseded()
            except TransportError as error:
                if self._stop.is_set():
                    break
                logger.error("monitor transport error: %s", error)
                time.sleep(_TICK)
            except Exception:  # the loop must survive anything, or every job would hang
                logger.exception("monitor error (the monitor keeps serving)")

    def _reply(self, token: Any, message: Message, kind: Kind, payload: bytes = b"") -> None:
        self.endpoint.reply(token, self.codec.reply(message.header, kind, payload))

    def _handle(self, token: Any, frames: list[memoryview]) -> None:
        try:
            message = self.codec.decode(frames, expect=FROM_RUNNER)
        except ProtocolError as error:
            self._drop(str(error))
            return
        if not self.guard.accept(message.header):
            self._drop(f"replayed {message.header.kind.value} for task {message.header.task_id}")
            return
        header = message.header
        task = self._tasks.get(header.task_id)  # one dict read: atomic, no lock needed
        if task is None:
            if header.kind is Kind.RESULT and header.task_id in self._ended:
                self._reply(token, message, Kind.ACK)  # a retried result: already have it
            else:
                self._reply(token, message, Kind.STOP, b"this job has ended")
            return
        if header.attempt != task.attempt:
            self._reply(token, message, Kind.STOP,
                        f"superseded by attempt {task.attempt}".encode())
            return
        now = time.monotonic()
        if task.suspended_at is not None:  # it speaks: it was resumed
            self._resume(task, now)
        previous, task.last_seen = task.last_seen, now
        if header.kind is Kind.FETCH:
            if task.state != _RUNNING:  # not a repeated fetch of the same attempt
                task.state = _RUNNING
                task.batch.sink.started(task.index, "", task.job_id)
            self._reply(token, message, Kind.TASK, self._task_payload(task))
        elif header.kind is Kind.HEARTBEAT:
            self._heartbeat(token, message, task, previous)
        else:
            self._result(token, message, task)

    def _task_payload(self, task: _Task) -> bytes:
        batch = task.batch
        kwargs = batch.kwargs[task.index] if batch.kwargs is not None else None
        return encode_task(self._functions[batch.spec.key], batch.args[task.index], kwargs,
                           batch.spec.working_dir)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        # Logged at debug level only after the first few: a flood must not fill the log.
        level = logging.WARNING if self.dropped <= 10 else logging.DEBUG
        logger.log(level, "dropped a message: %s", reason)

    def _heartbeat(self, token: Any, message: Message, task: _Task, previous: float) -> None:
        """A heartbeat, received at ``task.last_seen``; the task's message before it
        came at ``previous``."""
        try:
            beat = decode_heartbeat(message.payload)
        except ValueError as error:
            self._drop(f"unreadable heartbeat: {error}")
            self._reply(token, message, Kind.ACK)
            return
        task.state = _RUNNING
        task.host_name = beat.host_name
        task.heart_beat = beat.as_dict()
        task.track_cpu.append(beat.cpu)
        task.track_mem.append(beat.memory / 2**20)
        limits = self._limits_for(task.batch.spec)
        idle_for = self._idle_for(task, beat, limits, previous)
        verdict = judge_heartbeat(beat, idle_for, limits)
        if verdict is not None:
            self._reply(token, message, Kind.STOP, verdict.cause.encode())
            self._died(task, verdict)
            return
        self._reply(token, message, Kind.ACK)
        warning = idle_warning(idle_for, limits)
        if warning is not None:
            # Observers (the status page) see it with the heartbeat, as "warning".
            task.heart_beat["warning"] = warning
            if not task.idle_warned:
                task.idle_warned = True
                logger.warning("%s (job %s) is %s", self._name(task), task.job_id or "?",
                               warning)
        task.batch.sink.heartbeat(task.index, task.heart_beat)

    @staticmethod
    def _idle_for(task: _Task, beat: Heartbeat, limits: Limits, previous: float) -> float:
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

    def _result(self, token: Any, message: Message, task: _Task) -> None:
        outcome = decode_result(message.payload)
        self._end(task)
        host = outcome.host_name or task.host_name
        following = self._take_for(task, host) if self._takeable else None
        if following is None:
            self._reply(token, message, Kind.ACK)
        else:
            self._reply(token, message, Kind.TASK,
                        encode_next(following.id, following.attempt, self._task_payload(following)))
        sink = task.batch.sink
        if outcome.ok:
            sink.succeeded([task.index], [outcome.value], host)
        else:
            self._failures += 1
            cause = _memory_limit_cause(outcome.exception, task.batch.spec)
            sink.failed(task.index, self._failure(task, outcome.exception, outcome.traceback,
                                                  cause, host,
                                                  DeathKind.OUT_OF_MEMORY if cause else None))
        if following is not None:
            following.batch.sink.started(following.index, following.host_name,
                                         following.job_id)

    def _take_for(self, done: _Task, host: str) -> _Task | None:
        """A queued task of the same request for the runner that ran ``done``, now
        moved to that runner's scheduler job; None when there is none (or it must not).

        Tasks are taken from the end of the queue, whose scheduler jobs are the least
        likely to have started. The job a taken task was submitted as is cancelled
        (soon, in one call with others); should it start anyway, its fetch is answered
        STOP, since the taken task's attempt has moved on."""
        if self._closed or not done.job_id:
            return None
        with self._lock:
            queue = self._takeable.get(done.batch.spec.key)
            while queue:
                task = queue.pop()
                if task.state == _QUEUED and task.job_id and task.id in self._tasks:
                    break
            else:
                return None
            self._superseded.append(task.job_id)
            self.guard.forget(task.id, task.attempt)
            task.attempt += 1
            task.job_id = done.job_id
        task.state = _RUNNING
        task.host_name = host
        task.last_seen = time.monotonic()
        task.running_since = done.running_since or task.last_seen
        return task

    def _cancel_superseded(self) -> None:
        """Cancel the scheduler jobs whose tasks runners took, in one call."""
        with self._lock:
            ids, self._superseded = self._superseded, []
        self._next_cancel = time.monotonic() + 0.5  # so a burst of takes is one call
        try:
            self.scheduler.cancel(ids)
        except Exception as error:
            logger.warning("could not cancel %d jobs whose tasks were taken: %s", len(ids),
                           error)

    def _failure(self, task: _Task, exception: BaseException | None, traceback: str | None,
                 cause: str | None, host: str = "", kind: DeathKind | None = None) -> Failure:
        return Failure(exception, traceback, host or task.host_name, cause, task.resubmits,
                       tuple(task.track_cpu), tuple(task.track_mem), task.heart_beat,
                       task.job_id, kind)

    def _end(self, task: _Task) -> None:
        """A task is over: forget it, so its arguments and history can be freed."""
        task.state = _ENDED
        self.guard.forget(task.id)
        with self._lock:
            self._tasks.pop(task.id, None)
            self._ended.add(task.id)

    @staticmethod
    def _name(task: _Task) -> str:
        """The job's own name: a batch's spec carries only one job's name (the first
        of those that share it), so the sink is asked first."""
        return task.batch.sink.job_name(task.index) or f"{task.batch.spec.name}{task.index}"

    def _died(self, task: _Task, verdict: Verdict, *, cancel: bool = True) -> None:
        """Resubmit a dead job, or report it failed when it may not be."""
        if task.state == _ENDED:
            return
        if cancel and task.job_id:
            try:
                self.scheduler.cancel([task.job_id])
            except Exception as error:
                logger.warning("could not cancel job %s: %s", task.job_id, error)
        self.guard.forget(task.id, task.attempt)
        name = f"{self._name(task)} (job {task.job_id or '?'})"
        if verdict.resubmit and task.resubmits < self.max_resubmits and not self._closed:
            task.resubmits += 1
            task.attempt += 1
            task.state = _QUEUED
            task.job_id = ""
            task.running_since = None
            task.note = ""
            task.idle_since = None
            task.idle_warned = False
            task.suspended_at = None
            logger.warning("%s died: %s; resubmitting (%d of %d)", name, verdict.cause,
                           task.resubmits, self.max_resubmits)
            task.batch.sink.resubmitted(task.index, verdict.cause, verdict.kind)
            try:
                launch = self._launch(task.batch.spec, [task.id], task.attempt)
                job_id = self.scheduler.launch(launch)[0]
                with self._lock:
                    task.job_id = job_id
                    if self.reuse_runners and task.batch.spec.resources.h_rt is None:
                        self._takeable.setdefault(task.batch.spec.key, []).append(task)
            except Exception as error:
                self._end(task)
                self._failures += 1
                task.batch.sink.failed(task.index, self._failure(
                    task, None, None, f"{verdict.cause}; then could not be resubmitted: {error}",
                    kind=verdict.kind))
            return
        self._end(task)
        self._failures += 1
        logger.warning("%s died: %s", name, verdict.cause)
        task.batch.sink.failed(task.index, self._failure(task, None, None, verdict.cause,
                                                         kind=verdict.kind))

    def _poll(self) -> None:
        with self._lock:
            live = {t.job_id: t for t in self._tasks.values() if t.job_id}
        if not live:
            return
        self._polled_at = time.monotonic()
        try:
            statuses = self.scheduler.poll(list(live))
        except Exception as error:
            logger.warning("could not ask the scheduler about %d jobs: %s", len(live), error)
            return
        now = time.monotonic()
        for job_id, status in statuses.items():
            task = live.get(job_id)
            if task is None or task.job_id != job_id:
                continue
            if status.status is Status.SUSPENDED:
                if task.suspended_at is None:
                    task.suspended_at = now
                    logger.info("%s (job %s) is suspended by the scheduler; it is not "
                                "expected to send heartbeats until it is resumed",
                                self._name(task), job_id)
                continue
            if task.suspended_at is not None:
                self._resume(task, now)
            if status.status is Status.RUNNING and task.running_since is None:
                task.running_since = now
            elif status.status is Status.QUEUED:
                if status.note != task.note and task.state == _QUEUED:
                    task.note = status.note  # observers (the status page) show it
                    task.batch.sink.waiting(task.index, status.note)
                if status.note and status.note not in self._notes_told:
                    self._notes_told.add(status.note)
                    logger.warning("jobs are waiting in the queue: %s", status.note)
            verdict = judge_status(status, job_id)
            if verdict is not None:
                self._died(task, verdict, cancel=status.status is not Status.ENDED)

    def _resume(self, task: _Task, now: float) -> None:
        """A suspended task runs again: its liveness clocks go on from where they
        stopped, so the time it spent suspended counts neither as silence nor as idle."""
        suspended_at, task.suspended_at = task.suspended_at, None
        if suspended_at is None:
            return
        logger.info("%s (job %s) was resumed after %.0f s suspended", self._name(task),
                    task.job_id or "?", now - suspended_at)

        def shifted(moment: float) -> float:
            # Silence or idleness before the suspension still counts; a message that
            # came while it was suspended (it was resumed before a poll said so)
            # starts the count afresh.
            return now - max(0.0, suspended_at - moment)

        task.last_seen = shifted(task.last_seen)
        if task.running_since is not None:
            task.running_since = shifted(task.running_since)
        if task.idle_since is not None:
            task.idle_since = shifted(task.idle_since)

    def _silent(self, tasks: Sequence[_Task], now: float) -> list[tuple[_Task, Verdict, float]]:
        """The tasks silent for too long: each with its verdict, and when it went over."""
        found = []
        for task in tasks:
            if task.suspended_at is not None or task.state == _ENDED:
                continue  # a suspended job's clocks stand still
            if task.state == _RUNNING:
                since = max(task.last_seen, self._grace_from)
                verdict = judge_silence(now - since, True, self.address, self.limits)
            elif task.running_since is not None:
                since = max(task.running_since, self._grace_from)
                verdict = judge_silence(now - since, False, self.address, self.limits)
            else:
                continue
            if verdict is not None:
                found.append((task, verdict, since + self.limits.max_silence))
        return found

    def _sweep(self, now: float) -> None:
        """Find jobs gone silent."""
        with self._lock:
            tasks = list(self._tasks.values())
            # Started and ended tasks leave the takeable queues here, not one by one,
            # so their arguments and histories can be freed.
            for key, queue in list(self._takeable.items()):
                queue[:] = [task for task in queue if task.state == _QUEUED]
                if not queue:
                    del self._takeable[key]
        silent = self._silent(tasks, now)
        if silent and self._polled_at < max(over for _, _, over in silent):
            # Ask the scheduler before counting a silent job dead: it may have been
            # suspended (or have ended, with a better cause) since the last poll.
            self._poll()
            if time.monotonic() - now > _STALL:  # a slow poll: judge after a grace
                self._grace_from = time.monotonic()
                return
            silent = self._silent([task for task, _, _ in silent], time.monotonic())
        for task, verdict, _ in silent:
            self._died(task, verdict)
