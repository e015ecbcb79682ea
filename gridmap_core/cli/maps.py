"""The ``gridmap`` commands about maps, found by their journals: ``maps``, ``status``,
``logs``, ``cancel``, ``attach``, ``watch`` and ``clean`` (docs/maps.md), and the
parsing of their arguments. ``main`` (gridmap_core/cli/__init__.py) runs them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridmap_core.model.config import load_settings


def _roots(args: argparse.Namespace) -> list[Path]:
    from gridmap_core.journal.catalog import default_roots

    return [Path(args.temp_dir).expanduser()] if args.temp_dir else default_roots()


def _clean(args: argparse.Namespace) -> int:
    from gridmap_core.map.sessions import clean

    settings = load_settings()
    for line in clean(_roots(args), logs=args.logs, dry_run=args.dry_run,
                      keep=settings["MAP_KEEP_TIME"], grace=settings["MONITOR_GRACE"]):
        print(line)
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if days:
        return f"{days}d {hours - 24 * days}h"
    if hours:
        return f"{hours}h {minutes - 60 * hours}m"
    return f"{minutes}m" if minutes else f"{int(seconds)}s"


_ALIVE = {True: "submitter alive", False: "submitter gone", None: "submitter unknown"}


def _map_key(args: argparse.Namespace) -> Path:
    """The session directory of the map the command names (MapNotFound if none)."""
    from gridmap_core.journal.catalog import resolve

    return resolve(args.map, _roots(args) if args.temp_dir else None,
                   tell=lambda text: print(f"gridmap: {text}", file=sys.stderr))


def _files_lines(files: dict[str, Any]) -> list[str]:
    """What a session directory holds, for a map whose journal cannot be read."""
    monitor = files.get("monitor")
    mark = f"; marked {files['mark']}" if files.get("mark") else ""
    return [f"files: {', '.join(files['files']) or 'none'}",
            f"{_ALIVE[files.get('submitter_alive')]}{mark}",
            f"result files: {files['result_files']}, log files: {files['log_files']}, "
            f"scheduler jobs launched: {files['launched_jobs']}",
            "monitor: " + ("none recorded" if not monitor else
                           f"{monitor['transport']} {monitor['address']} (pid "
                           f"{monitor['pid']} on {monitor['host']}), last touched "
                           f"{_age(time.time() - monitor['touched'])} ago")]


def _maps(args: argparse.Namespace) -> int:
    from gridmap_core.journal.catalog import maps

    roots = _roots(args)
    found = maps(roots)
    if args.json:
        print(json.dumps([one.as_json() for one in found], indent=2))
        return 0
    if not found:
        print(f"no maps in {', '.join(str(root) for root in roots)}")
        return 0
    rows = [(one.id, one.name, one.state, _age(one.age), one.backend, _ALIVE[one.alive],
             one.counts_text()) for one in found]
    widths = [max(len(row[column]) for row in rows) for column in range(6)]
    for one, row in zip(found, rows, strict=True):
        print("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=False))
              + f"  {row[6]}")
        if one.problem:
            print(f"    {one.problem}")
            print(f"    {_files_lines(one.files)[0]}")
    return 0


def _failure_json(task: Any, error: str) -> dict[str, Any]:
    return {"position": task.position, "name": task.name, "state": task.state,
            "cause": task.cause, "kind": task.kind, "host": task.host,
            "attempts": task.attempt + 1, "job_id": task.job_id, "error": error or None}


def _status(args: argparse.Namespace) -> int:
    import contextlib

    from gridmap_core.journal.catalog import DAMAGED, session_files, summary
    from gridmap_core.journal.store import Journal, JournalError
    from gridmap_core.watching.journal_view import error_of, last_line
    from gridmap_core.wire import beacon

    directory = _map_key(args)
    found = summary(directory)
    problem = found.problem if found else None
    failures: list[Any] = []
    errors: dict[int, str] = {}
    if found is not None and found.state != DAMAGED:
        try:
            with contextlib.closing(Journal.open(directory)) as journal:
                failures = journal.tasks(("dead", "failed"), failures_first=True)
                # A failed job's error, read without unpickling its result.
                errors = {task.id: error_of(journal, task) for task in
                          (failures if args.json or args.all else failures[:_SHOWN_FAILURES])}
        except JournalError as error:
            problem = str(error)
    monitor = beacon.read_monitor(directory)
    if found is None or problem:
        return _status_damaged(directory, problem or "no journal", session_files(directory),
                               args.json)
    if args.json:
        print(json.dumps({**found.as_json(), "monitor": monitor and {
            **monitor[0].__dict__, "touched": monitor[1] / 1e9}, "failures": [
            _failure_json(task, errors.get(task.id, "")) for task in failures]}, indent=2))
        return 0
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found.created or 0))
    total = sum(found.counts.values())
    print(f"map {found.id} ({found.name}): {found.state}, backend {found.backend}, "
          f"started {when} ({_age(found.age)} ago) on {found.host}")
    print(f"directory: {directory}; {_ALIVE[found.alive]}"
          + (f"; marked {found.mark}" if found.mark else ""))
    if monitor is not None and found.state == "running":
        print(f"monitor: {monitor[0].transport} {monitor[0].address} (pid {monitor[0].pid} "
              f"on {monitor[0].host}), last touched "
              f"{_age(time.time() - monitor[1] / 1e9)} ago")
    print(f"{total} job{'' if total == 1 else 's'}: {found.counts_text()}")
    shown = failures if args.all else failures[:_SHOWN_FAILURES]
    if shown:
        print("failed and dead jobs (position, name, state, attempts, host: cause):")
    for task in shown:
        raised = last_line(errors.get(task.id, ""))
        cause = task.cause or (f"raised {raised}" if raised else "the job raised; `gridmap "
                               "logs` shows its output" if task.state == "failed"
                               else "not recorded")
        print(f"  {task.position}  {task.name}  {task.state}  {task.attempt + 1} "
              f"attempt{'s' if task.attempt else ''}  {task.host or '?'}: "
              + cause.replace("\n", "\n      "))
    if len(failures) > len(shown):
        print(f"  ... and {len(failures) - len(shown)} more (--all lists them)")
    return 0


# Failed jobs ``gridmap status`` lists without --all.
_SHOWN_FAILURES = 50


def _status_damaged(directory: Path, problem: str, files: dict[str, Any], as_json: bool
                    ) -> int:
    print(f"gridmap: {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps({"directory": str(directory), "problem": problem, **files},
                         indent=2))
        return 1
    print(f"map in {directory}: its journal cannot be read; what the directory holds:")
    for line in _files_lines(files):
        print(f"  {line}")
    return 1


def _logs(args: argparse.Namespace) -> int:
    import contextlib

    from gridmap_core.journal.control import log_files
    from gridmap_core.journal.store import Journal

    directory = _map_key(args)
    with contextlib.closing(Journal.open(directory)) as journal:
        task = journal.task(args.job)
        total = sum(journal.counts().values())
        found = log_files(journal, task) if task is not None else []
    if task is None:
        print(f"gridmap: map {directory} has no job {args.job!r}: give its position in "
              f"the map (0 to {total - 1}) or its name", file=sys.stderr)
        return 1
    what = f"job {task.position} ({task.name})"
    if not found:
        print(f"gridmap: no logs of {what}, attempt {task.attempt}, in {directory / 'logs'}: "
              + ("it has not started yet" if task.state == "queued" else
                 "they were removed as the map ended (logs are kept when a job fails or "
                 "asks for cleanup=False), or the node could not write them"),
              file=sys.stderr)
        return 1
    for log in found:
        stream = "stdout" if log.stream == "out" else "stderr"
        where = f", scheduler job {log.job_id}" if log.job_id else ""
        shared = (f", in the runner launched for job {log.launched_for}, whose output "
                  "comes first" if log.launched_for is not None else "")
        print(f"==> {stream} of {what}, attempt {log.attempt}{where}{shared}: {log.path} <==",
              flush=True)
        text = log.path.read_bytes().decode("utf-8", errors="replace")
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    if all(log.attempt != task.attempt for log in found):
        print(f"(no logs of its last attempt, {task.attempt}, yet)")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from gridmap_core.journal.control import cancel

    lines, ok = cancel(_map_key(args))
    for line in lines:
        print(line)
    return 0 if ok else 1


def _attach(args: argparse.Namespace) -> int:
    import importlib

    from gridmap_core.model.job import JobException

    # Loaded only when asked for: attaching starts a monitor, with all it needs.
    attach = importlib.import_module("gridmap_core.face.attach").attach
    try:
        results = attach(args.map, force=args.force, temp_dir=args.temp_dir)
    except JobException as error:
        print(f"gridmap: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gridmap: attach interrupted: the map was closed and its jobs cancelled",
              file=sys.stderr)
        return 130
    print(f"map {args.map}: {len(results)} results, no failures")
    return 0


def _watch(args: argparse.Namespace) -> int:
    from gridmap_core.watching.journal_page import watch

    watch(_map_key(args), address=args.address)
    return 0


def _temp_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temp-dir", help="where to look (default: DEFAULT_TEMP_DIR and "
                        "the system's temp dir)")


def _map_command(commands: Any, name: str, help: str,
                 run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """The subcommand ``name``, which acts on the map its first argument names."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
    parser.add_argument("map", help="the map: its id, the start of its id, its name, or "
                        "its session directory")
    parser.set_defaults(run=run)
    return parser


def _map_commands(commands: Any) -> None:
    """The commands that act on this user's maps, found by their journals."""
    listing = commands.add_parser("maps", help="list this user's maps: id, name, state, "
                                  "jobs per state, age, backend, submitter alive or gone")
    _temp_dir_option(listing)
    listing.add_argument("--json", action="store_true", help="print the maps as JSON")
    listing.set_defaults(run=_maps)
    status = _map_command(commands, "status", "a map's jobs per state and its failed and "
                          "dead jobs with their causes", _status)
    _temp_dir_option(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--all", action="store_true",
                        help=f"list every failed job (default: the first {_SHOWN_FAILURES})")
    logs = _map_command(commands, "logs", "print a job's stdout and stderr logs", _logs)
    logs.add_argument("job", help="the job: its position in the map (from 0) or its name")
    _temp_dir_option(logs)
    stop = _map_command(commands, "cancel", "cancel a map: its scheduler jobs, and the map "
                        "itself", _cancel)
    _temp_dir_option(stop)
    attach = _map_command(commands, "attach", "take on a map whose submitter is gone: serve "
                          "its jobs until it ends, and print its results' count", _attach)
    attach.add_argument("--force", action="store_true",
                        help="attach even though a monitor seems to serve the map")
    _temp_dir_option(attach)
    watch = _map_command(commands, "watch", "show a map's progress page, from its journal",
                         _watch)
    watch.add_argument("--address", help="HOST:PORT the page listens on")
    _temp_dir_option(watch)
