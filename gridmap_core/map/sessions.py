"""The session directories maps keep in temp_dir, and removing those left behind.

Each monitored session makes ``TEMP_DIR/gridmap-XXXXXXXXXXXX/`` (its key, its jobs'
logs, its journal) and records there which process submitted the map: its host, pid
and start time (:mod:`gridmap_core.journal.submitter`).

A map with a journal keeps its directory after it ends, for ``gridmap status`` and
``logs``, for MAP_KEEP_TIME; a map whose submitter was killed can be taken on by
``gridmap attach`` for MONITOR_GRACE, and is abandoned after. The next map, and
``gridmap clean``, remove these directories once their time is up, by the rules of
:func:`gridmap_core.journal.catalog.judge`: never while the submitter or a monitor
lives, nor while the map can still be attached.

A directory without a journal (a map of an older gridmap) is removed when its map
ended without cleaning up: its record says it ran on this host and its submitting
process is gone. It is never removed while its submitter lives, nor for a submitter
on another host, whose life cannot be checked from here.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from gridmap_core.journal.catalog import LOGS, MapSummary, Verdict, judge, summary
from gridmap_core.journal.submitter import (
    PREFIX,
    SUBMITTER,
    Session,
    lives,
    machine,
    mark_ended,
    read_session,
    record_submitter,
    session_directories,
)

__all__ = [
    "PREFIX",
    "SUBMITTER",
    "Session",
    "abandoned",
    "clean",
    "machine",
    "mark_ended",
    "record_submitter",
    "remove_abandoned",
    "sessions_in",
]
logger = logging.getLogger(__name__)


def sessions_in(root: str | Path) -> list[Session]:
    """This user's session directories in ``root`` (none if it cannot be listed)."""
    return [read_session(path) for path in session_directories(root)]


def abandoned(session: Session) -> bool:
    """Whether the map of ``session`` (one without a journal) is over without having
    cleaned up: its record says it runs, on this host, and its submitting process is
    gone."""
    return session.recorded and not session.ended and lives(session) is False


def remove(sessions: Iterable[Session]) -> list[Path]:
    """Remove these session directories; the ones removed."""
    removed = []
    for session in sessions:
        shutil.rmtree(session.path, ignore_errors=True)
        if not session.path.exists():
            removed.append(session.path)
    return removed


def _settings(keep: float | None, grace: float | None) -> tuple[float, float]:
    if keep is None or grace is None:
        from gridmap_core.model.config import load_settings

        settings = load_settings()
        keep = settings["MAP_KEEP_TIME"] if keep is None else keep
        grace = settings["MONITOR_GRACE"] if grace is None else grace
    return float(keep), float(grace)


def _verdicts(root: Path, keep: float, grace: float, now: float
              ) -> Iterable[tuple[Session, MapSummary | None, Verdict | None]]:
    """Each session directory of ``root``, its map (None: it has no journal), and
    what becomes of it (None: by the rules of directories without a journal)."""
    for session in sessions_in(root):
        found = summary(session.path, now=now)
        yield session, found, None if found is None else judge(found, keep=keep,
                                                                grace=grace, now=now)


def remove_abandoned(root: str | Path, *, keep: float | None = None,
                     grace: float | None = None) -> list[Path]:
    """Remove the session directories in ``root`` whose time is up: maps ended or
    abandoned more than ``keep`` (MAP_KEEP_TIME) seconds ago, no one having served
    them for ``grace`` (MONITOR_GRACE) seconds; and those without a journal whose
    submitter on this host is gone."""
    keep, grace = _settings(keep, grace)
    going = [session for session, _, verdict in _verdicts(Path(root), keep, grace, time.time())
             if (verdict.remove if verdict is not None else abandoned(session))]
    return remove(going)


_LEFT = {
    "live": "of maps whose submitter or monitor lives",
    "attachable": "of maps whose submitter is gone that gridmap attach can take on",
    "kept": "of ended or abandoned maps, kept for MAP_KEEP_TIME",
    "elsewhere": "of maps submitted from other hosts",
    "damaged": "of maps whose journal cannot be read (gridmap status says what is left)",
    "running": "of running maps",
    "ended": "of ended maps, kept for their logs (--logs removes them)",
    "unrecorded": "with no submitter recorded (an older gridmap's, or being made)",
}


def clean(roots: Iterable[str | Path], *, logs: bool = False, dry_run: bool = False,
          keep: float | None = None, grace: float | None = None) -> list[str]:
    """What ``gridmap clean`` does in these temp_dirs: remove the session directories
    whose time is up (see :func:`remove_abandoned`), and with ``logs`` the logs that
    maps ended before their time kept. Returns the lines to print."""
    keep, grace = _settings(keep, grace)
    now = time.time()
    lines = []
    left = dict.fromkeys(_LEFT, 0)
    verb = "would remove" if dry_run else "removed"
    for root in dict.fromkeys(Path(r).expanduser() for r in roots):
        for session, found, verdict in _verdicts(root, keep, grace, now):
            if verdict is not None and found is not None:
                if not verdict.remove:
                    left[verdict.kind] += 1
                    if logs and found.state in ("succeeded", "failed", "cancelled") \
                            and verdict.kind == "kept" and (session.path / LOGS).is_dir():
                        lines.append(_remove_logs(session.path / LOGS, verb, dry_run))
                    continue
                why = verdict.why
            elif abandoned(session):
                why = f"its submitter, pid {session.pid} on {session.host}, is gone"
            elif logs and session.ended:
                why = "its map ended; these are the logs it kept"
            else:
                left["unrecorded" if not session.recorded else "ended" if session.ended
                     else "elsewhere" if not session.here
                     else "running"] += 1
                continue
            if dry_run or remove([session]):
                lines.append(f"{verb} {session.path} ({why})")
            else:
                lines.append(f"could not remove {session.path} ({why})")
    kept = [f"{count} {_LEFT[kind]}" for kind, count in left.items() if count]
    count = sum(left.values())
    lines.append(f"{count} session director{'y' if count == 1 else 'ies'} left"
                 + (f": {'; '.join(kept)}" if kept else ""))
    return lines


def _remove_logs(folder: Path, verb: str, dry_run: bool) -> str:
    why = "the logs of an ended map; its journal stays for MAP_KEEP_TIME"
    if not dry_run:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            return f"could not remove {folder} ({why})"
    return f"{verb} {folder} ({why})"
