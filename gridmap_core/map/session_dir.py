"""A map's session directory: made in temp_dir as the map starts, with its journal;
told where the monitor listens; ended and tidied as the map ends.

What each file is for is in docs/monitor.md ("Files") and docs/maps.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from gridmap_core.backend import SessionOptions
from gridmap_core.backend.scheduler import Scheduler
from gridmap_core.journal.store import Journal, MapRecord
from gridmap_core.map.journaling import MapJournal
from gridmap_core.map.sessions import PREFIX, mark_ended, remove_abandoned
from gridmap_core.model.config import SETTINGS, plugin_settings
from gridmap_core.model.node_imports import search_path
from gridmap_core.wire import beacon

__all__ = ["announce", "cancel_command", "clean_up", "end_journal", "make_directory",
           "new_journal", "opened_with", "remove_abandoned_in"]
logger = logging.getLogger("gridmap_core.map.monitor")


def make_directory(work_dir: str) -> Path:
    """A new, private session directory in ``work_dir``."""
    # Absolute: the nodes find the key and open the logs from the jobs' working
    # directory, which need not be this process's.
    root = Path(work_dir).expanduser().absolute()
    if not root.is_dir():
        raise FileNotFoundError(
            f"temp_dir {str(root)!r} does not exist. Set DEFAULT_TEMP_DIR (or pass "
            "temp_dir=) to a directory the compute nodes share with this host."
        )
    path = root / f"{PREFIX}{secrets.token_hex(6)}"
    os.mkdir(path, 0o700)
    return path


def remove_abandoned_in(work_dir: str, keep: float, grace: float) -> None:
    """Remove the session directories of maps ended or abandoned more than ``keep``
    seconds ago (a killed submitter's map only once no runner can still be waiting
    for it, ``grace`` seconds on): they hold keys, and logs and journals no one will
    read."""
    try:
        removed = remove_abandoned(Path(work_dir).expanduser(), keep=keep, grace=grace)
    except Exception as error:  # tidying up must never stop a map
        logger.debug("could not look for abandoned session directories: %s", error)
        return
    if removed:
        logger.info("removed %d session director%s of maps whose submitting process "
                    "is gone: %s", len(removed), "y" if len(removed) == 1 else "ies",
                    ", ".join(str(path) for path in removed))


def cancel_command(scheduler: Scheduler) -> list[str] | None:
    """The command that cancels the scheduler's jobs, ids appended (its optional
    ``cancel_command``): the runners' way to cancel a map whose monitor is gone."""
    command = getattr(scheduler, "cancel_command", None)
    try:
        return list(command()) if command is not None else None
    except Exception as error:  # the runners' last resort only: never fail a map for it
        logger.debug("the scheduler named no cancel command: %s", error)
        return None


def opened_with(options: SessionOptions) -> dict[str, Any]:
    """How a session was opened, as the journal keeps it for attach: the settings'
    values as read (never a secret one, nor the environment they were read from: an
    attaching process reads those from its own), and the session's options."""
    declared = {**SETTINGS, **plugin_settings()}
    settings = options.settings
    values = {name: value for name, value in settings.values.items()
              if name not in declared or not declared[name].secret}
    return {"settings": values, "backend": settings.section,
            "max_processes": options.max_processes, "temp_dir": options.temp_dir,
            "quiet": options.quiet, "white_list": tuple(options.white_list),
            "options": dict(options.options)}


def new_journal(directory: Path, map_id: str, options: SessionOptions) -> Journal:
    """The journal of a new map, with how its session was opened (for attach)."""
    settings = options.settings
    values = {name: settings[name] for name, setting in SETTINGS.items()
              if not setting.secret}
    backend = str(settings.section or settings["BACKEND"] or "")
    return Journal.create(
        directory,
        MapRecord(map_id, "", backend, time.time(), socket.gethostname(), os.getpid(),
                  str(directory.parent), "running", None, values),
        session=pickle.dumps(opened_with(options)), search_path=search_path())


def announce(directory: Path, transport: str, address: str) -> None:
    """Tell the runners, through the session directory, where this monitor is."""
    beacon.write_monitor(directory, beacon.MonitorRecord(
        transport, address, socket.gethostname(), os.getpid(), time.time()))


def end_journal(directory: Path, journal: Journal, record: MapJournal, state: str) -> None:
    """Record that the map ended in ``state``, and tell runners still about."""
    with contextlib.suppress(OSError):
        beacon.mark(directory, beacon.ENDED, f"the map has {state}")
    if record.broken is None:
        try:
            journal.set_state(state)
        except Exception as error:  # said once already, if the journal broke
            logger.debug("could not record the map's end: %s", error)
    journal.close()


def clean_up(directory: Path, failures: int, *, keep_logs: bool, keep_time: float) -> None:
    """Remove the key and the results; the logs too unless a job failed or asked to
    keep them (``keep_logs``); and the journal unless MAP_KEEP_TIME keeps it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / "key")
    shutil.rmtree(directory / "results", ignore_errors=True)
    log_dir = directory / "logs"
    keep_logs = bool(failures or keep_logs)
    if keep_logs:
        if failures:  # the place to look for why they failed
            logger.warning("%d %s failed; the jobs' logs are kept in %s", failures,
                           "job" if failures == 1 else "jobs", log_dir)
        else:
            logger.info("job logs are kept in %s", log_dir)
    if keep_logs or keep_time > 0:
        mark_ended(directory)  # kept on purpose, not abandoned
        if not keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
    else:
        shutil.rmtree(directory, ignore_errors=True)
