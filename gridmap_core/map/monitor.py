"""The monitor: serves jobs to runners, watches them, resubmits the dead.

:class:`MonitoredSession` is the :class:`~gridmap_core.backend.BackendSession` of
every backend that launches runners through a :class:`~gridmap_core.backend.scheduler.Scheduler`.
One thread owns the transport endpoint and all decisions: it answers FETCH with the
task, records heartbeats, takes results, polls the scheduler for all live jobs in
one call every CHECK_FREQUENCY seconds, and applies the rules of
:mod:`gridmap_core.map.liveness`. A dead job is resubmitted up to NUM_RESUBMITS times,
then reported failed with its cause of death; so every job ends.

This module holds the session's setup and teardown, and the thread's loop. The loop
hands each message to the :class:`~gridmap_core.map.serving.Server` and, between
messages, has the :class:`~gridmap_core.map.job_watch.JobWatch` poll the scheduler and
judge the silent; both keep the tasks in one
:class:`~gridmap_core.map.tasks.TaskTable`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridmap_core.backend import Batch, DeathKind, JobSpec, SessionOptions, Sink
from gridmap_core.backend.scheduler import Launch, Scheduler, runner_prefix
from gridmap_core.journal.store import Journal
from gridmap_core.map.heap import HeapTrim
from gridmap_core.map.job_watch import STALL, JobWatch
from gridmap_core.map.journaling import MapJournal
from gridmap_core.map.liveness import Limits, Verdict
from gridmap_core.map.resume import deliver_ended, rebuild
from gridmap_core.map.serving import Server
from gridmap_core.map.session_dir import (
    announce,
    cancel_command,
    clean_up,
    end_journal,
    make_directory,
    new_journal,
    remove_abandoned_in,
)
from gridmap_core.map.sessions import record_submitter
from gridmap_core.map.shared_dir import check_shared
from gridmap_core.map.tasks import ENDED, Task, TaskTable, failure_of

# MAX_TRACK stays importable from here, where it was first defined.
from gridmap_core.map.tasks import MAX_TRACK as MAX_TRACK
from gridmap_core.model.serialization import dumps
from gridmap_core.plugins.types import TransportSpec
from gridmap_core.transports import (
    Endpoint,
    Transport,
    TransportError,
    load_transport,
    transport_spec,
    with_curve_keys,
)
from gridmap_core.transports.advice import advice_for
from gridmap_core.wire import beacon
from gridmap_core.wire.protocol import (
    Codec,
    MapKeys,
    ReplayGuard,
    new_keys,
    read_key_file,
    write_key_file,
)

__all__ = ["MonitoredSession", "open_monitored"]
logger = logging.getLogger(__name__)

_TICK = 0.2  # longest the loop blocks, so stop requests and polls are seen quickly
# How long closing waits for the cancels under way before making them itself.
CANCEL_GRACE = 30.0
# At most this many messages are taken in before the results among them are kept
# and answered: a bound on how long a runner waits for its answer under load.
GROUP_COMMIT = 256


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
        self.options = options
        self.map_id = f"map-{secrets.token_hex(8)}"
        self.grace = float(settings["MONITOR_GRACE"])
        self.keep_time = float(settings["MAP_KEEP_TIME"])
        self.cancelled_by = ""  # why the map was cancelled from outside, if it was
        self.heartbeat_every = float(settings["HEARTBEAT_FREQUENCY"])
        self.check_every = float(settings["CHECK_FREQUENCY"])
        self.max_resubmits = int(settings["NUM_RESUBMITS"])
        max_idle_time, idle_setting = idle_limits(settings)
        self.limits = Limits(
            max_silence=float(settings["MAX_TIME_BETWEEN_HEARTBEATS"]),
            idle_threshold=float(settings["IDLE_THRESHOLD"]),
            max_idle_time=max_idle_time,
            idle_setting=idle_setting,
            heartbeat_every=self.heartbeat_every,
        )
        self.transport_name = str(settings["TRANSPORT"])
        spec = transport_spec(self.transport_name, "setting TRANSPORT")
        transport = load_transport(self.transport_name, "setting TRANSPORT", spec.factory)
        peers = _peers(scheduler)
        if options.resume:
            self.directory = Path(options.resume)
            keys = self._open_again(transport, spec, settings, peers)
        else:
            # Before anything is made or submitted: a temp_dir only this host sees
            # would fail every job at launch, on every node.
            check_shared(work_dir, peers)
            remove_abandoned_in(work_dir, self.keep_time, self.grace)
            self.directory = make_directory(work_dir)
            try:
                keys = self._open(transport, spec, settings, peers)
            except BaseException:
                # Nothing of a session that could not start stays on disk: no key, no
                # directory. The journal first: its checkpoints must not write in the
                # directory while it goes.
                self._close_journal()
                shutil.rmtree(self.directory, ignore_errors=True)
                raise
        self.codec = Codec(keys.mac, self.map_id)
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
            "--grace", f"{self.grace:g}",
        ]
        self._keep_logs = False  # a job asked for cleanup=False
        self.reuse_runners = bool(settings["REUSE_RUNNERS"])
        # The submitting thread fills the table; the monitor's thread, alone, serves
        # the runners and watches the jobs, each part moving the table's tasks on.
        self._table = TaskTable(self.guard, reuse_runners=self.reuse_runners)
        self._table.record = self.record
        self._watch = JobWatch(self._table, scheduler, self.limits, address=self.address,
                               max_resubmits=self.max_resubmits, launch=self._launch,
                               unheard=self._tell_unheard)
        self._server = Server(self.endpoint, self.codec, self._table, self._watch,
                              self.limits)
        # After a flood of dropped messages, the heap's free memory goes back.
        self.heap = HeapTrim()
        self._stop = threading.Event()
        self._poll_now = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"gridmap-{name}",
                                        daemon=True)
        try:
            if not options.resume:
                self._thread.start()
        except BaseException:
            self.endpoint.close()
            self._close_journal()
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def _close_journal(self) -> None:
        """Close the journal of a session that could not start, if it has one."""
        journal = getattr(self, "journal", None)
        if journal is not None:
            with contextlib.suppress(Exception):
                journal.close()

    @property
    def dropped(self) -> int:
        """Messages refused: forged, malformed, replayed, …"""
        return self._server.dropped

    def _open(self, transport: Transport, spec: TransportSpec, settings: Any,
              peers: Sequence[str]) -> MapKeys:
        """Fill the session directory (the submitter's record, logs, the keys) and start
        serving, with the options the transport builds from the settings and the hosts
        that will run the runners, and the map's CURVE keys if it takes them; the map's
        keys."""
        record_submitter(self.directory)
        self.log_dir = str(self.directory / "logs")
        os.mkdir(self.log_dir, 0o700)
        keys = new_keys()
        self.key_file = str(write_key_file(self.directory / "key", keys))
        self.journal = new_journal(self.directory, self.map_id, self.options)
        self.record = MapJournal(self.journal, self.directory, cancel_command(self.scheduler))
        self.endpoint: Endpoint = transport.serve(with_curve_keys(
            transport, spec.options_for(self.directory, settings, peers), keys.curve))
        self.address = self.endpoint.address
        announce(self.directory, self.transport_name, self.address)
        logger.debug("runners reach the monitor at %s (the scheduler's nodes: %s)",
                     self.address, ", ".join(peers) or "not known")
        return keys

    def _open_again(self, transport: Transport, spec: TransportSpec, settings: Any,
                    peers: Sequence[str]) -> MapKeys:
        """Take on the map of the session directory :attr:`directory` (``gridmap
        attach``): its id, keys, logs and journal, with a new endpoint; the map's keys.
        The endpoint serves with the key file's CURVE server key pair, the one the
        waiting runners expect, so their handshakes with it succeed."""
        journal = Journal.open(self.directory, readonly=False)
        self.map_id = journal.map_record().id
        self.journal = journal
        self.record = MapJournal(journal, self.directory, cancel_command(self.scheduler))
        self.log_dir = str(self.directory / "logs")
        self.key_file = str(self.directory / "key")
        keys = read_key_file(self.key_file)
        record_submitter(self.directory)  # this process serves the map now
        self.endpoint = transport.serve(with_curve_keys(
            transport, spec.options_for(self.directory, settings, peers), keys.curve))
        self.address = self.endpoint.address
        announce(self.directory, self.transport_name, self.address)
        journal.set_state("running")
        return keys

    def _tell_unheard(self, jobs: int, seconds: float) -> None:
        """No runner has reached the monitor, though the scheduler runs jobs: say what
        the transport advises now, not when the jobs are counted dead."""
        cause = (f"{jobs} job(s) the scheduler runs have not called it in {seconds:.0f} s; "
                 "they are counted dead after MAX_TIME_BETWEEN_HEARTBEATS "
                 f"({self.limits.max_silence:g} s)")
        try:
            what, todo = advice_for(self.transport_name).unreachable(
                self.transport_name, self.address, cause, self.settings,
                str(self.directory.parent))
        except Exception as error:  # advice is a courtesy: never fail the map for it
            logger.debug("no advice from transport %s: %s", self.transport_name, error)
            what, todo = f"no job reached the monitor at {self.address}: {cause}", ""
        logger.warning("%s%s", what, f". What to do: {todo}" if todo else "")

    # -- submitting thread ---------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        indices = list(batch.sink.claim(0, len(batch)))
        if not indices:
            return
        if self._table.closed:
            raise RuntimeError("the session is closed")
        spec = batch.spec
        self._keep_logs = self._keep_logs or not spec.cleanup
        if spec.key not in self._table.functions:
            self._table.functions[spec.key] = dumps(spec.function)
        tasks = self._table.add(batch, indices)
        self.record.added(batch, tasks, self._table.functions[spec.key])
        first = tasks[0].id
        try:
            ids = self.scheduler.launch(self._launch(spec, range(first, first + len(tasks)), 0))
        except BaseException:
            self._table.discard(tasks)
            self.record.cancelled(tasks)
            raise
        self._table.launched(tasks, ids)

    def take_on(self, sink: Sink) -> list[str]:
        """Serve the map of a resumed session (``options.resume``): tell ``sink``, by
        the jobs' places in the map, of those that ended before, and go on with the
        rest as their monitor would have; the jobs' names, in the map's order."""
        rebuilt = rebuild(self.journal, sink)
        self._table.functions.update(rebuilt.functions)
        self._table.adopt(rebuilt.live, [row.id for row in rebuilt.ended])
        for task_id, attempt in deliver_ended(self.journal, rebuilt, sink):
            self._server.accepted_before(task_id, attempt)
        self._table.failures += sum(row.state in ("failed", "dead", "cancelled")
                                    for row in rebuilt.ended)
        known = [task for task in rebuilt.live if task.job_id]
        adopt = getattr(self.scheduler, "adopt", None)
        if known and adopt is not None:
            adopt([task.job_id for task in known])
        elif known:  # jobs this scheduler cannot follow: run them again
            for task in known:
                self._watch.died(task, Verdict(
                    "its scheduler job could not be followed by the monitor that took the "
                    "map on", kind=DeathKind.VANISHED))
        for task in rebuilt.live:
            if not task.job_id and task.state != ENDED:
                ids = self.scheduler.launch(self._launch(task.batch.spec, [task.id],
                                                         task.attempt))
                self._table.launched([task], ids)
        # Runners that gave the map up cancelled its jobs: those launched from now on
        # must not read that as their end.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / beacon.ABANDONED)
        logger.info("took on map %s: %d of %d jobs had ended; %d go on (%d of them to "
                    "launch)", self.map_id, len(rebuilt.ended), rebuilt.size,
                    len(rebuilt.live), len(rebuilt.live) - len(known))
        self._thread.start()
        self.poll_soon()
        return rebuilt.names

    def _launch(self, spec: JobSpec, tasks: Sequence[int], attempt: int) -> Launch:
        return Launch(spec=spec, tasks=tasks, attempt=attempt, log_dir=self.log_dir,
                      runner=self.runner, name=spec.name)

    def poll_soon(self) -> None:
        """Have the monitor poll the scheduler now (a scheduler's hint; any thread)."""
        self._poll_now.set()

    def close(self, cancel: bool = False) -> None:
        if self._table.closed:
            return
        self._table.closed = True
        # The loop stops first, so the jobs cancelled below are not reported as dead.
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        # A poll under way must not use the scheduler after it is closed.
        self._watch.finish_poll(CANCEL_GRACE)
        # Cancels still under way or refused (the scheduler was away) are made here,
        # with the live jobs': nothing may outlive the session, cancelled or not.
        live = self._table.job_ids() + self._watch.canceller.close(CANCEL_GRACE)
        unfinished = self._table.snapshot()
        self.record.cancelled(unfinished)
        try:
            if live:
                self.scheduler.cancel(live)
        finally:
            self.endpoint.close()
            self.scheduler.close()
            state = ("cancelled" if unfinished or self.cancelled_by
                     else "failed" if self._table.failures else "succeeded")
            end_journal(self.directory, self.journal, self.record, state)
            clean_up(self.directory, self._table.failures, keep_logs=self._keep_logs,
                     keep_time=self.keep_time)

    # -- the monitor's thread ------------------------------------------------------

    def _keep_results(self) -> None:
        """Results arrived: take the messages already waiting too (up to
        GROUP_COMMIT), then keep every result among them in one commit and answer
        their runners. Under load many results share a commit; alone, a result waits
        for nothing."""
        try:
            for _ in range(GROUP_COMMIT):
                received = self.endpoint.receive(0)
                if received is None:
                    break
                self._server.handle(*received)
        finally:
            self._server.release()

    def _tend_session(self) -> None:
        """Once a second: show the runners this monitor lives, write the journal's
        gathered changes, and end the map if ``gridmap cancel`` said so."""
        beacon.touch_monitor(self.directory)
        self.record.flush()
        if not self.cancelled_by and beacon.end_mark(self.directory) == beacon.CANCELLED:
            self.cancelled_by = "the map was cancelled (gridmap cancel)"
            logger.warning("%s: its %d unfinished jobs are cancelled", self.cancelled_by,
                           len(self._table.live))
            self._cancel_all(self.cancelled_by)

    def _cancel_all(self, cause: str) -> None:
        """End every unfinished job as cancelled, for ``cause``, and cancel its
        scheduler job."""
        tasks: list[Task] = self._table.snapshot()
        ids = self._table.job_ids()
        self.record.cancelled(tasks)
        for task in tasks:
            self._table.end(task)
            self._table.failures += 1
            task.batch.sink.failed(task.index, failure_of(task, None, None, cause,
                                                          kind=DeathKind.CANCELLED))
        if ids:
            self._watch.canceller.cancel(ids)

    def _serve(self) -> None:
        next_poll = time.monotonic() + self.check_every
        next_sweep = time.monotonic() + 1.0
        while not self._stop.is_set():
            try:
                wait = min(_TICK, max(0.0, min(next_poll, next_sweep) - time.monotonic()))
                received = self.endpoint.receive(wait)
                if received is not None:
                    self._server.handle(*received)
                    if self._server.held:
                        self._keep_results()
                now = time.monotonic()
                if self._poll_now.is_set() or now >= next_poll:
                    self._poll_now.clear()
                    self._watch.start_poll()
                    next_poll = time.monotonic() + self.check_every
                self._watch.collect()
                if time.monotonic() - now > STALL:
                    now = self._watch.grant_grace()
                if now >= next_sweep:
                    self._watch.sweep(now)
                    next_sweep = now + 1.0
                    self._tend_session()
                    self.heap.check(self._server.dropped + getattr(self.endpoint, "dropped", 0),
                                    self._server.dropped_bytes)
                if self._table.superseded and now >= self._watch.next_cancel:
                    self._watch.cancel_superseded()
            except TransportError as error:
                if self._stop.is_set():
                    break
                logger.error("monitor transport error: %s", error)
                time.sleep(_TICK)
            except Exception:  # the loop must survive anything, or every job would hang
                logger.exception("monitor error (the monitor keeps serving)")


def _peers(scheduler: Scheduler) -> tuple[str, ...]:
    """The hosts that run the scheduler's jobs, if it can say (its optional ``peers``):
    the transport advertises the address they reach this host by. Asking must not
    keep a map from starting."""
    peers = getattr(scheduler, "peers", None)
    if peers is None:
        return ()
    try:
        return tuple(str(peer) for peer in peers())
    except Exception as error:  # a scheduler command that failed: guess as before
        logger.debug("the scheduler could not name its nodes: %s", error)
        return ()


def open_monitored(scheduler: Scheduler, options: SessionOptions, *, name: str,
                   python: object = None, work_dir: str | None = None) -> MonitoredSession:
    """A :class:`MonitoredSession` over ``scheduler``, named ``name`` (its thread's name).

    ``python`` is the interpreter the runners start with (the backend's ``python``
    option; empty or None for this one's), ``work_dir`` where the session's private
    directory goes (``options.temp_dir`` by default: it must be visible to the nodes).
    When the session cannot start (a bad transport, a port in use), the scheduler is
    closed before the error goes on, since no session will ever close it: its
    connection or threads would otherwise outlive the failed ``open``.
    """
    try:
        return MonitoredSession(scheduler, options,
                                work_dir=options.temp_dir if work_dir is None else work_dir,
                                python=str(python) if python else None, name=name)
    except BaseException:
        scheduler.close()
        raise
