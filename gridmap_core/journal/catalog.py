"""This user's maps, found by their journals in the temp_dirs, and what becomes of
their session directories.

A map's session directory (``TEMP_DIR/gridmap-XXXXXXXXXXXX/``) holds its journal
and the files its runners and monitors share. ``gridmap maps``, ``status``,
``logs``, ``cancel`` and ``attach`` find a map here by its id, the start of its id,
its name or its directory; ``gridmap clean`` and each new map decide here which
directories may go (:func:`judge`).

Whether a map is still served is told two ways: on the submitter's own machine, by
its process (``submitter.json``); anywhere, by ``monitor.json``, which a living
monitor touches about every second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmap_core.errors import GridMapError
from gridmap_core.journal.store import JOURNAL, RESULTS, Journal, JournalError
from gridmap_core.journal.submitter import (
    PREFIX,
    SUBMITTER,
    lives,
    read_session,
    session_directories,
)
from gridmap_core.wire import beacon

__all__ = [
    "DAMAGED",
    "ENDED_MAP_STATES",
    "LIVE_MONITOR",
    "LOGS",
    "MapNotFound",
    "MapSummary",
    "Verdict",
    "default_roots",
    "judge",
    "maps",
    "resolve",
    "session_files",
    "state_order",
    "submitter_alive",
    "summary",
]

logger = logging.getLogger(__name__)

# A monitor touches monitor.json about every second: one that has not for this long
# is gone (or frozen), and a map no one serves.
LIVE_MONITOR = 30.0
DAMAGED = "journal damaged"
ENDED_MAP_STATES = ("succeeded", "failed", "cancelled")
# The order states are told in.
_STATE_ORDER = ("succeeded", "failed", "dead", "cancelled", "running", "queued")
LOGS = "logs"


class MapNotFound(GridMapError, LookupError):
    """No map (or no single map) answers to the key given: it says what was looked
    for, and where."""


def default_roots() -> list[Path]:
    """Where maps are looked for: DEFAULT_TEMP_DIR, and the system's temp dir (where
    the local backend goes when DEFAULT_TEMP_DIR is missing)."""
    from gridmap_core.model.config import load_settings

    roots = [Path(load_settings()["DEFAULT_TEMP_DIR"]).expanduser(),
             Path(tempfile.gettempdir())]
    return list(dict.fromkeys(roots))


@dataclass(frozen=True)
class MapSummary:
    """One map as ``gridmap maps`` shows it."""

    id: str
    name: str
    state: str  # the journal's map state, or DAMAGED
    counts: dict[str, int]
    created: float | None
    ended: float | None
    backend: str
    host: str
    directory: Path
    alive: bool | None  # its submitter or a monitor lives; None: cannot be told
    mark: str | None = None  # ABANDONED or CANCELLED when one was written
    problem: str | None = None  # why the journal could not be read
    files: dict[str, Any] = field(default_factory=dict)  # with a damaged journal

    @property
    def age(self) -> float | None:
        return None if self.created is None else max(0.0, time.time() - self.created)

    def counts_text(self) -> str:
        """"37 succeeded, 2 failed, 11 running" (each state that has jobs)."""
        if self.state == DAMAGED:
            return "jobs not known"
        told = [f"{self.counts[state]} {state}" for state in state_order(self.counts)
                 if self.counts[state]]
        return ", ".join(told) or "no jobs"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state,
                "counts": self.counts, "created": self.created, "age": self.age,
                "ended": self.ended, "backend": self.backend, "host": self.host,
                "directory": str(self.directory), "submitter_alive": self.alive,
                "mark": self.mark, "problem": self.problem,
                **({"files": self.files} if self.files else {})}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def monitor_touched(directory: Path) -> float | None:
    """When the monitor last touched monitor.json (None: there is none)."""
    found = beacon.read_monitor(directory)
    return None if found is None else found[1] / 1e9


def submitter_alive(directory: str | os.PathLike[str], *, now: float | None = None
                    ) -> bool | None:
    """Whether the map of ``directory`` is served: on the machine of the process its
    record names (its submitter, or the process that took it on), whether that
    process lives; elsewhere, whether a monitor touched monitor.json within
    LIVE_MONITOR seconds. None when neither can be told (a map of another machine
    without a monitor.json)."""
    path = Path(directory)
    now = time.time() if now is None else now
    # The record names the process serving the map now: a monitor that takes a map
    # on (gridmap attach) records itself. Where it can be checked, it is the answer.
    alive = lives(read_session(path))
    if alive is not None:
        return alive
    touched = monitor_touched(path)
    return None if touched is None else now - touched < LIVE_MONITOR


def session_files(directory: Path) -> dict[str, Any]:
    """What a session directory holds besides its journal, for a map whose journal
    cannot be read: its files, how many results and logs, the scheduler jobs and
    the monitor it names."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError:
        names = []

    def count(folder: str) -> int:
        try:
            return sum(1 for _ in os.scandir(directory / folder))
        except OSError:
            return 0

    job_ids, _ = beacon.launched(directory)
    monitor = beacon.read_monitor(directory)
    return {"files": names, "result_files": count(RESULTS), "log_files": count(LOGS),
            "launched_jobs": len(job_ids), "mark": beacon.end_mark(directory),
            "submitter_alive": submitter_alive(directory),
            "monitor": None if monitor is None else
            {**monitor[0].__dict__, "touched": monitor[1] / 1e9}}


def summary(directory: Path, *, now: float | None = None) -> MapSummary | None:
    """The map of session directory ``directory``; None when it has no journal (a
    map of an older gridmap, or one starting right now)."""
    if not (directory / JOURNAL).is_file():
        return None
    alive = submitter_alive(directory, now=now)
    mark = beacon.end_mark(directory)
    try:
        with contextlib.closing(Journal.open(directory)) as journal:
            record = journal.map_record()
            counts = journal.counts()
    except JournalError as error:
        session = read_session(directory)
        return MapSummary(directory.name.removeprefix(PREFIX), "?", DAMAGED, {}, None,
                          None, "?", session.host, directory, alive, mark, str(error),
                          session_files(directory))
    return MapSummary(record.id, record.name, record.state, counts, record.created,
                      record.ended, record.backend, record.host, directory, alive, mark)


def maps(roots: Iterable[str | os.PathLike[str]] | None = None) -> list[MapSummary]:
    """Every map of this user in ``roots`` (default: :func:`default_roots`) that has a
    journal, oldest first; a damaged journal shows as state DAMAGED."""
    now = time.time()
    found = []
    for root in dict.fromkeys(Path(r).expanduser() for r in (roots or default_roots())):
        for directory in session_directories(root):
            one = summary(directory, now=now)
            if one is not None:
                found.append(one)
    return sorted(found, key=lambda one: (one.created is None, one.created or 0.0,
                                          str(one.directory)))


def _looks_like_path(key: str) -> bool:
    return os.sep in key or key.startswith((".", "~"))


def resolve(key: str, roots: Iterable[str | os.PathLike[str]] | None = None, *,
            tell: Callable[[str], None] | None = None) -> Path:
    """The session directory of the map ``key`` names: a map id, the start of one
    (naming one map only), a map name (the newest of that name; ``tell`` is told
    when there are several) or a session directory. MapNotFound says what was
    looked for and where. ``tell`` defaults to a warning in the log."""
    if _looks_like_path(key) or (Path(key).is_dir() and (Path(key) / JOURNAL).exists()):
        path = Path(key).expanduser().absolute()
        if (path / JOURNAL).is_file():
            return path
        what = "does not exist" if not path.exists() else \
            "holds no map journal (a map of an older gridmap, or not a session directory)"
        raise MapNotFound(f"session directory {path} {what}; `gridmap maps` lists the "
                          "maps there are")
    searched = list(dict.fromkeys(Path(r).expanduser() for r in (roots or default_roots())))
    found = maps(searched)
    for test in (lambda one: one.id == key,
                 lambda one: one.directory.name in (key, PREFIX + key)):
        exact = [one for one in found if test(one)]
        if exact:
            return exact[-1].directory
    named = [one for one in found if one.name == key]
    if named:
        if len(named) > 1:
            say = tell or logger.warning
            say(f"{len(named)} maps are named {key!r}; taking the newest, {named[-1].id} "
                f"({named[-1].directory}). Give its id to choose another "
                "(`gridmap maps` lists them)")
        return named[-1].directory
    started = [one for one in found if one.id.startswith(key)
               or one.directory.name.startswith(PREFIX + key)]
    if len(started) == 1:
        return started[0].directory
    where = ", ".join(str(root) for root in searched)
    if started:
        raise MapNotFound(f"{key!r} starts the ids of {len(started)} maps ("
                          f"{', '.join(one.id for one in started)}): give more of it")
    raise MapNotFound(f"no map with the id, start of an id, or name {key!r} in {where} "
                      f"({len(found)} maps there); `gridmap maps` lists them, and "
                      "--temp-dir looks elsewhere")


# -- what becomes of session directories ---------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether a map's session directory may be removed now, and why."""

    remove: bool
    why: str
    kind: str  # ended, abandoned (remove); live, attachable, kept, elsewhere, damaged


def _mark_time(directory: Path, name: str) -> float | None:
    path = directory / name
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return _mtime(path)


def last_sign(directory: Path) -> float:
    """The last time the map showed it was served: its monitor's last touch of
    monitor.json, or, with none, the last write of its journal and records. (The
    journal's own time changes as readers close it, so it is the last resort.)"""
    touched = monitor_touched(directory)
    if touched is not None:
        return touched
    names = (JOURNAL, f"{JOURNAL}-wal", SUBMITTER, beacon.LAUNCHED)
    times = [t for t in (_mtime(directory / name) for name in names) if t is not None]
    return max(times, default=_mtime(directory) or 0.0)


def _ago(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def judge(summary: MapSummary, *, keep: float, grace: float,
          now: float | None = None) -> Verdict:
    """Whether the session directory of ``summary``'s map may go: an ended map (its
    journal says succeeded, failed or cancelled) and an abandoned one (an
    ``abandoned`` or ``cancelled`` mark, or no one has served it for longer than
    ``grace``) once ``keep`` seconds have passed since it ended or was abandoned.
    Never a map a monitor serves, nor one not ended whose submitter lives, nor one
    that ``gridmap attach`` can still take on, nor one of another machine whose life
    cannot be told."""
    now = time.time() if now is None else now
    directory = summary.directory
    if summary.state in ENDED_MAP_STATES:
        # A map's end in its journal is final: its session has closed, and its
        # submitter, even one that lives on (an interactive Python), is done with it;
        # only a monitor still about (touching monitor.json) keeps it.
        touched = monitor_touched(directory)
        if summary.alive is not False and touched is not None \
                and now - touched < LIVE_MONITOR:
            return Verdict(False, "a monitor serves it", "live")
        since = summary.ended or last_sign(directory)
        what = f"its map ended ({summary.state}) {_ago(now - since)} ago"
        kind = "ended"
    elif summary.alive:
        return Verdict(False, "its submitter or monitor lives", "live")
    elif summary.state == DAMAGED:
        return Verdict(False, f"its journal cannot be read ({summary.problem}); remove it "
                       "by hand once `gridmap status` showed what is left", "damaged")
    elif summary.mark is not None:
        since = _mark_time(directory, summary.mark) or last_sign(directory)
        what = f"its map was {summary.mark} {_ago(now - since)} ago"
        kind = "ended" if summary.mark == beacon.ENDED else "abandoned"
    elif summary.state == "abandoned":
        since = summary.ended or last_sign(directory)
        what = f"its map was abandoned {_ago(now - since)} ago"
        kind = "abandoned"
    elif summary.alive is None:
        return Verdict(False, "its submitter cannot be checked from here (another "
                       "machine's, or not recorded) and no monitor.json tells", "elsewhere")
    else:
        since = last_sign(directory) + grace
        if now < since:
            return Verdict(False, f"its submitter is gone; `gridmap attach {summary.id}` "
                           f"can take it on for {_ago(since - now)} more", "attachable")
        what = (f"its submitter is gone and no monitor served it for "
                f"{_ago(now - since + grace)} (MONITOR_GRACE {grace:g} s)")
        kind = "abandoned"
    if now - since < keep:
        return Verdict(False, f"{what}; kept {_ago(keep - (now - since))} more "
                       f"(MAP_KEEP_TIME {keep:g} s)", "kept")
    return Verdict(True, what, kind)


def state_order(counts: dict[str, int]) -> Sequence[str]:
    """The states of ``counts`` in the order they are told."""
    return [*(s for s in _STATE_ORDER if s in counts),
            *sorted(set(counts) - set(_STATE_ORDER))]
