"""``attach``: take on a map whose submitting process is gone, and finish it.

The map's journal says how its session was opened (backend, settings, options) and
holds every job. A new monitor serves the map from a new address, which the map's
runners read from its session directory; it collects the results kept while no
monitor listened, goes on watching and resubmitting the rest, and ends the map as
its submitter would have: :func:`attach` returns the results in the map's order, or
raises :class:`~gridmap_core.model.job.JobException` as ``grid_map`` does.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from gridmap_core.backend import SessionOptions
from gridmap_core.errors import GridMapError
from gridmap_core.journal import catalog
from gridmap_core.journal.store import Journal, MapRecord
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.map.runs import Run, wait_all
from gridmap_core.map.sessions import Session, abandoned, sessions_in
from gridmap_core.model.config import load_settings
from gridmap_core.model.job import Job, JobException
from gridmap_core.plugins.manager import get_plugin_manager
from gridmap_core.plugins.selection import probe
from gridmap_core.wire import beacon

__all__ = ["AttachError", "attach"]
logger = logging.getLogger("gridmap.attach")

# A monitor whose monitor.json has not changed for this long is taken to be gone.
MONITOR_SILENT = 10.0
# How long --force waits for the submitter to go after SIGKILL.
STOP_GRACE = 10.0


class AttachError(GridMapError):
    """A map that cannot be taken on: it says why, and what to do."""


def _alive_elsewhere(directory: Path) -> bool:
    """Whether the map's monitor, on another host, still shows it lives: its
    monitor.json changes within MONITOR_SILENT seconds."""
    first = beacon.read_monitor(directory)
    if first is None:
        return False
    deadline = time.monotonic() + MONITOR_SILENT
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = beacon.read_monitor(directory)
        if now is None or now[1] != first[1]:
            return now is not None
    return False


def _stop(session: Session) -> None:
    """Stop the map's submitting process on this host with SIGKILL: a process told
    more gently could, on its way out, cancel the very map to be taken on."""
    try:
        process = psutil.Process(session.pid)
        process.kill()
        deadline = time.monotonic() + STOP_GRACE
        # Gone, or a zombie its parent has not reaped yet: it serves no map either way.
        while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                raise AttachError(f"pid {session.pid} did not end after SIGKILL; the "
                                  "map is not taken on")
            time.sleep(0.1)
    except psutil.NoSuchProcess:
        pass


def _check_free(directory: Path, record: MapRecord, force: bool) -> None:
    """Refuse while another monitor serves the map, unless ``force`` stops it."""
    found = [found for found in sessions_in(directory.parent) if found.path == directory]
    if not found:
        return
    session = found[0]
    if session.recorded and session.here and not abandoned(session) \
            and session.pid != os.getpid():
        if not force:
            raise AttachError(
                f"map {record.id} is still served by its submitting process, pid "
                f"{session.pid} on {session.host}: two monitors must not serve one map. "
                "Wait for it, or use `gridmap attach --force`, which stops it first")
        logger.warning("stopping pid %d, which serves map %s (--force)", session.pid,
                       record.id)
        _stop(session)
    elif session.recorded and not session.here and _alive_elsewhere(directory):
        raise AttachError(
            f"map {record.id} is still served by a monitor on {session.host} (pid "
            f"{session.pid}): two monitors must not serve one map. Stop it there, or "
            f"attach from {session.host} with --force")


def _check_state(directory: Path, record: MapRecord) -> None:
    mark = beacon.end_mark(directory)
    if record.state not in ("running", "abandoned") or mark in (beacon.ENDED,
                                                                 beacon.CANCELLED):
        state = record.state if record.state != "running" else mark
        raise AttachError(
            f"map {record.id} has ended ({state}): there is nothing to take on. "
            f"`gridmap status {record.id}` shows how its jobs ended")
    if not (directory / "key").is_file():
        raise AttachError(f"map {record.id} has no key file left in {directory}: its "
                          "runners cannot be answered. Run the map again")


def _session_options(journal: Journal, directory: Path) -> SessionOptions:
    """The options the map's session was opened with, its settings read again over
    this process's environment and config files (which give the secret ones)."""
    blob = journal.session_options()
    if blob is None:
        raise AttachError(f"the journal {journal.path} does not say how the map's session "
                          "was opened; it cannot be taken on")
    opened: dict[str, Any] = pickle.loads(blob)
    settings = load_settings(opened["settings"])
    if opened["backend"]:
        settings = settings.for_backend(opened["backend"])
    return SessionOptions(settings=settings, max_processes=opened["max_processes"],
                          temp_dir=opened["temp_dir"], quiet=opened["quiet"],
                          white_list=tuple(opened["white_list"]),
                          options=opened["options"], resume=str(directory))


def _open(record: MapRecord, options: SessionOptions) -> MonitoredSession:
    spec = get_plugin_manager().backend(record.backend, "the map's journal")
    backend, availability = probe(spec)
    if not availability.usable:
        raise AttachError(f"backend {record.backend!r}, which runs map {record.id}, is not "
                          f"usable here: {availability.reason}")
    session = backend.open(options)
    if not isinstance(session, MonitoredSession):
        session.close()
        raise AttachError(f"backend {record.backend!r} runs its jobs without runners in "
                          "this session; there is nothing to take on")
    return session


def attach(map_id: str, *, force: bool = False, temp_dir: str | None = None) -> list[Any]:
    """Take on the map ``map_id`` (its id, a unique prefix of it, its name, or its session
    directory), whose submitting process is gone, and finish it: the results in the
    map's order, or JobException naming the jobs that failed."""
    roots = [temp_dir] if temp_dir else None
    directory = catalog.resolve(map_id, roots)
    journal = Journal.open(directory)
    try:
        record = journal.map_record()
        _check_state(directory, record)
        _check_free(directory, record, force)
        options = _session_options(journal, directory)
        size = sum(journal.counts().values())
        # The map's functions and arguments unpickle here as they did in its submitter.
        for entry in reversed(journal.search_path()):
            if entry not in sys.path:
                sys.path.insert(0, entry)
    finally:
        journal.close()
    session = _open(record, options)
    run = Run(size)
    try:
        names = session.take_on(run)
        wait_all([run])
    except BaseException:
        session.close(cancel=True)
        raise
    session.close()
    failed = [_failed_job(index, run, names) for index in sorted(run.failures)]
    if failed:
        raise JobException(failed, total=size, log_dir=str(directory / "logs"))
    logger.info("map %s finished on %s: %d results", record.id, socket.gethostname(), size)
    return list(run.values)


def _failed_job(index: int, run: Run, names: list[str]) -> Job:
    failure = run.failures[index]
    job = Job(_unknown, [], name=names[index] if index < len(names) else f"job {index}")
    job.record_failure(failure)
    return job


def _unknown() -> None:
    """The function of a job read back from a journal (only its runners load it)."""
