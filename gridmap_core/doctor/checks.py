"""``gridmap doctor``: check, before a big map, that jobs can run and report back here.

Six checks, in order: the settings load, the backend is usable, temp_dir is writable,
one trivial job makes the round trip, its runner reached the monitor, and it saw
temp_dir as this host does. Each is a :class:`Check` (PASS, FAIL or SKIP, with what
to do after a FAIL); :func:`diagnose` yields them one by one and skips a check when
one it depends on failed. :func:`render` and :func:`summary` turn them into text.
The round trip itself is in :mod:`gridmap_core.doctor.trip`; the names, :class:`Check`,
:class:`Plan` and :class:`Verdict` in :mod:`gridmap_core.doctor.verdicts`, re-exported here.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gridmap_core.doctor.trip import check_monitor, check_round_trip, check_shared, run_round_trip
from gridmap_core.doctor.verdicts import (
    BACKEND,
    NAMES,
    SETTINGS,
    TEMP_DIR,
    Check,
    Plan,
    Verdict,
)
from gridmap_core.model.config import ConfigError, load_settings
from gridmap_core.plugins.manager import PluginManager, UnknownPluginError, get_plugin_manager
from gridmap_core.plugins.selection import BackendUnavailableError, choose_backend, probe
from gridmap_core.plugins.types import BackendSpec, PluginLoadError

__all__ = [
    "NAMES",
    "Check",
    "Plan",
    "Verdict",
    "as_json",
    "check_backend",
    "check_settings",
    "check_temp_dir",
    "diagnose",
    "exit_status",
    "render",
    "summary",
]

WIDTH = 80
_NAME_COLUMN = 20
_TODO_INDENT = " " * 6


def _skip(name: str, because: str) -> Check:
    return Check(name, Verdict.SKIP, f"skipped: because {because}")


def _origin(source: str) -> str:
    # Settings say "argument default_temp_dir"; on the command line that is an option.
    if source.startswith("argument "):
        return "--" + source.removeprefix("argument ").removeprefix("default_").replace("_", "-")
    return source


def check_settings(backend: str | None, temp_dir: str | None,
                   manager: PluginManager) -> tuple[Check, Plan | None]:
    """Load the settings as a map would, and say which backend they choose and why."""
    try:
        settings = load_settings({"BACKEND": backend, "DEFAULT_TEMP_DIR": temp_dir})
        name = settings.backend
        if name:
            why = _origin(settings.sources["BACKEND"])
        else:
            try:
                name = choose_backend(settings, manager).spec.name
                why = "automatic choice: the best usable backend, as none is set"
            except BackendUnavailableError as error:
                name, why = None, str(error)
        if name:
            settings = settings.for_backend(name)
            spec = manager.backends().get(name)
            if spec is not None:  # one not installed is the backend check's to report
                settings.checked_backend_options(name, spec.options)
    except ConfigError as error:
        return Check(SETTINGS, Verdict.FAIL, str(error),
                     "correct the value, key or file named above; `gridmap config` shows every "
                     "setting and where it came from", config_error=True), None
    plan = Plan(settings, name, why)
    transports = manager.transports()
    if plan.transport not in transports:
        return Check(SETTINGS, Verdict.FAIL,
                     f"TRANSPORT={plan.transport!r} ({_origin(settings.sources['TRANSPORT'])}) "
                     f"is not an installed transport",
                     f"set GRIDMAP_TRANSPORT to one of: {', '.join(transports)}",
                     config_error=True), None
    shown = f"backend {name} ({why})" if name else "no backend chosen"
    transport = f"transport {plan.transport} ({_origin(settings.sources['TRANSPORT'])})"
    return Check(SETTINGS, Verdict.PASS, f"{shown}, {transport}"), plan


def _usable_others(specs: dict[str, BackendSpec], name: str) -> list[str]:
    return [other for other, spec in specs.items()
            if other != name and probe(spec)[1].usable]


def check_backend(plan: Plan, manager: PluginManager) -> tuple[Check, BackendSpec | None]:
    """Whether the chosen backend is installed and usable here (its availability probe)."""
    specs = manager.backends()
    if plan.backend is None:
        return Check(BACKEND, Verdict.FAIL, plan.why,
                     "install a backend package (gridmap-local runs jobs on this machine), "
                     "then check with `gridmap backends`"), None
    try:
        spec = manager.backend(plan.backend, plan.why)
    except UnknownPluginError:
        return Check(BACKEND, Verdict.FAIL,
                     f"no backend called {plan.backend!r} is installed (asked for by {plan.why})",
                     f"choose one of: {', '.join(specs) or 'none installed'} (with --backend "
                     f"or GRIDMAP_BACKEND), or install the package that provides "
                     f"{plan.backend!r}"), None
    except PluginLoadError as error:
        return Check(BACKEND, Verdict.FAIL, str(error),
                     f"choose one of: {', '.join(specs) or 'none installed'} (with --backend "
                     f"or GRIDMAP_BACKEND), or install the package that provides "
                     f"{plan.backend!r}"), None
    _, availability = probe(spec)
    if availability.usable:
        return Check(BACKEND, Verdict.PASS, f"{spec.name}: {availability.reason}"), spec
    others = _usable_others(specs, spec.name)
    instead = (f"; or choose a backend that is usable here: {', '.join(others)}" if others
               else "")
    return Check(BACKEND, Verdict.FAIL, f"{spec.name} is not usable here: {availability.reason}",
                 "do what the reason above says (install or set what it names), then check "
                 f"with `gridmap backends`{instead}"), None


def check_temp_dir(path: str, cluster: bool = True) -> Check:
    """temp_dir exists, and a file in it can be written, read back and removed.
    Nothing is created: a map does not create temp_dir either, and a directory made
    here (at the file system's root, as the default /scratch/ would be) is one the
    compute nodes do not see. ``cluster``: whether the backend's jobs need it; a
    backend that runs jobs on this machine does without it."""
    root = Path(path).expanduser()
    todo = "set DEFAULT_TEMP_DIR (or pass --temp-dir) to a directory you can write"
    if cluster:
        todo += ", that the compute nodes mount at the same path"
    if not root.exists():
        if not cluster:
            return Check(TEMP_DIR, Verdict.PASS,
                         f"not needed: {path} does not exist, and a backend that runs jobs "
                         "on this machine keeps its files in the system's temporary "
                         "directory instead")
        return Check(TEMP_DIR, Verdict.FAIL, f"{path} does not exist",
                     f"create it where the compute nodes mount it at the same path "
                     f"(mkdir -p {path}), or {todo}")
    if not root.is_dir():
        return Check(TEMP_DIR, Verdict.FAIL, f"{path} exists but is not a directory", todo)
    started = time.perf_counter()
    step = "write a file in it"
    try:
        data = secrets.token_bytes(64)
        descriptor, name = tempfile.mkstemp(prefix=".gridmap-doctor-", dir=root)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        step = "read back the file written"
        same = Path(name).read_bytes() == data
        step = "remove the file written"
        os.unlink(name)
    except OSError as error:
        return Check(TEMP_DIR, Verdict.FAIL,
                     f"{path}: cannot {step}: {error.strerror or error}", todo)
    if not same:
        return Check(TEMP_DIR, Verdict.FAIL, f"{path}: a file read back differs from what "
                     "was written", "check the file system's health, or " + todo)
    took = (time.perf_counter() - started) * 1000
    return Check(TEMP_DIR, Verdict.PASS, f"{path} (write+read+remove {took:.0f} ms)")


def diagnose(backend: str | None = None, temp_dir: str | None = None, timeout: float = 120.0,
             manager: PluginManager | None = None) -> Iterator[Check]:
    """Run every check in order, yielding each as it ends.

    ``backend`` and ``temp_dir`` override the settings as the command-line options do;
    ``timeout`` bounds the round trip's job, in seconds.
    """
    manager = manager or get_plugin_manager()
    check, plan = check_settings(backend, temp_dir, manager)
    yield check
    if plan is None:
        for name in NAMES[1:]:
            yield _skip(name, "the settings are not valid")
        return
    check, spec = check_backend(plan, manager)
    yield check
    temp = check_temp_dir(plan.temp_dir, spec is None or spec.is_cluster)
    yield temp
    if spec is None:
        installed = plan.backend in manager.backends()
        for name in NAMES[3:]:
            yield _skip(name, f"backend {plan.backend or '(none)'} is not "
                        f"{'usable here' if installed else 'installed'}")
        return
    if spec.is_cluster and temp.failed:
        for name in NAMES[3:]:
            yield _skip(name, f"backend {spec.name} keeps its jobs' files in temp_dir, which "
                        "is not writable")
        return
    trip = run_round_trip(plan, spec, timeout)
    yield check_round_trip(trip, plan, spec)
    yield check_monitor(trip, plan, spec)
    yield check_shared(trip, plan, spec)


def exit_status(checks: Sequence[Check]) -> int:
    """0 when every check passed, 2 for a setting that is not valid, 1 for any other
    failure."""
    if any(check.config_error for check in checks):
        return 2
    return 1 if any(check.failed for check in checks) else 0


def _wrap(text: str, width: int, indent: str = "", hanging: str = "") -> list[str]:
    # Paths and addresses stay whole, even when one is wider than a line.
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=hanging,
                         break_long_words=False, break_on_hyphens=False) or [""]


def render(check: Check) -> str:
    """A check as lines of at most 80 columns (a path longer than a line excepted)."""
    head = f"{check.verdict.value:<6}{check.name:<{_NAME_COLUMN}}"
    first, *rest = _wrap(check.detail, WIDTH - len(head))
    lines = [head + first, *(" " * len(head) + line for line in rest)]
    if check.todo:
        lines += _wrap(f"what to do: {check.todo}", WIDTH, _TODO_INDENT,
                       _TODO_INDENT + " " * len("what to do: "))
    return "\n".join(lines)


def summary(checks: Sequence[Check]) -> str:
    """The final verdict line."""
    failed = sum(check.failed for check in checks)
    skipped = sum(check.verdict is Verdict.SKIP for check in checks)
    if not failed and not skipped:
        return f"READY: all {len(checks)} checks passed"
    text = f"NOT READY: {failed} of {len(checks)} checks failed"
    text += f", {skipped} skipped" if skipped else ""
    return "\n".join(_wrap(text + ": fix the first FAIL and run again", WIDTH))


def as_json(checks: Sequence[Check]) -> dict[str, Any]:
    """The checks and the exit status, for ``--json``."""
    return {
        "checks": [{**asdict(check), "verdict": check.verdict.value} for check in checks],
        "exit_status": exit_status(checks),
    }
