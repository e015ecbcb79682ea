"""``gridmap doctor``, run as a user runs it: each check's verdict on the real backends,
and the right check failing (the later ones skipped) when something is wrong."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gridmap_core.doctor.checks import NAMES, Check, Verdict, check_temp_dir, exit_status, render
from gridmap_core.doctor.trip import scheduler_evidence

pytestmark = pytest.mark.timeout(120)

LINE = re.compile(r"^(PASS|FAIL|SKIP)  (.{20})(.*)$")


@dataclass
class Line:
    verdict: str
    detail: str
    todo: str = ""


@dataclass
class Outcome:
    status: int
    lines: dict[str, Line]
    out: str
    seconds: float


def parse(out: str) -> dict[str, Line]:
    """The checks as printed: verdict, detail and what to do, wrapped lines joined."""
    lines: dict[str, Line] = {}
    current: Line | None = None
    for text in out.splitlines():
        match = LINE.match(text)
        if match:
            current = lines[match.group(2).strip()] = Line(match.group(1), match.group(3))
        elif current is not None and text.startswith("      what to do: "):
            current.todo = text.strip().removeprefix("what to do: ")
        elif current is not None and text.startswith(" " * 18):
            if current.todo:
                current.todo += " " + text.strip()
            else:
                current.detail += " " + text.strip()
        else:
            current = None
    return lines


def doctor(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Outcome:
    """Run ``gridmap doctor`` in a process of its own, as a user would."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gridmap_core.cli", "doctor", *args], cwd=cwd,
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=100,
    )
    seconds = time.monotonic() - started
    assert "Traceback" not in done.stderr, done.stderr
    return Outcome(done.returncode, parse(done.stdout), done.stdout, seconds)


def verdicts(outcome: Outcome) -> list[str]:
    assert list(outcome.lines) == list(NAMES), outcome.out
    return [outcome.lines[name].verdict for name in NAMES]


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fits(line: str) -> bool:
    """At most 80 columns, unless one word (a path) is longer than the room left."""
    return len(line) <= 80 or " " not in line[26:].strip()


def assert_all_pass(outcome: Outcome) -> None:
    assert verdicts(outcome) == ["PASS"] * 6, outcome.out
    assert outcome.status == 0, outcome.out
    assert outcome.out.rstrip().splitlines()[-1] == "READY: all 6 checks passed"
    assert all(fits(line) for line in outcome.out.splitlines()), outcome.out


# -- every check passes ------------------------------------------------------------------


def test_local_backend_passes_every_check(tmp_path: Path) -> None:
    temp_dir = tmp_path / "scratch"
    temp_dir.mkdir()
    outcome = doctor("--backend", "local", "--temp-dir", str(temp_dir), cwd=tmp_path)
    assert_all_pass(outcome)
    assert outcome.lines["temp_dir writable"].detail.startswith(f"{temp_dir} (write+read")
    assert outcome.lines["settings"].detail.startswith("backend local (--backend)")
    trip = outcome.lines["round trip"].detail
    assert f"from host {socket.gethostname()} (this machine)" in trip
    assert outcome.lines["temp_dir shared"].detail.startswith("not needed")


def test_local_runner_mode_goes_through_the_monitor(tmp_path: Path) -> None:
    (tmp_path / "gridmap.toml").write_text('[backends.local]\nmode = "runner"\n')
    outcome = doctor("--backend", "local", "--temp-dir", str(tmp_path), cwd=tmp_path)
    assert_all_pass(outcome)
    reached = outcome.lines["nodes reach monitor"].detail
    assert re.match(r"the job reached the monitor at tcp://\S+:\d+ \(zmq, address: "
                    r"automatic choice\)", reached), reached


@pytest.mark.parametrize("transport", ["zmq", "filesystem"])
def test_sge_passes_every_check(sge_cluster: str, tmp_path: Path, transport: str) -> None:
    outcome = doctor("--backend", "sge", "--temp-dir", str(tmp_path), cwd=tmp_path,
                     env={"GRIDMAP_TRANSPORT": transport})
    assert_all_pass(outcome)
    trip = outcome.lines["round trip"].detail
    # The node's addresses follow its name.
    assert re.search(rf"from host {re.escape(sge_cluster)} \([^)]*\), as job (\d+) "
                     r"\(JOB_ID=\1\)", trip), trip
    assert f"transport {transport}" in outcome.lines["settings"].detail
    assert f"in {tmp_path}" in outcome.lines["temp_dir shared"].detail
    assert not list(tmp_path.glob("gridmap-doctor-*"))  # the exchange was cleaned up


@pytest.mark.parametrize("transport", ["zmq", "filesystem"])
def test_slurm_passes_every_check(slurm_cluster: str, tmp_path: Path, transport: str) -> None:
    outcome = doctor("--backend", "slurm", "--temp-dir", str(tmp_path), cwd=tmp_path,
                     env={"GRIDMAP_TRANSPORT": transport})
    assert_all_pass(outcome)
    trip = outcome.lines["round trip"].detail
    assert re.search(r", as job (\d+)_1 \(SLURM_ARRAY_JOB_ID=\1\)", trip), trip
    assert f"from host {slurm_cluster}" in trip
    assert "ran on this host" in outcome.lines["temp_dir shared"].detail
    assert not list(tmp_path.glob("gridmap-doctor-*"))


# -- failures ----------------------------------------------------------------------------


def test_unknown_backend(tmp_path: Path) -> None:
    outcome = doctor("--backend", "nope", "--temp-dir", str(tmp_path), cwd=tmp_path)
    assert verdicts(outcome) == ["PASS", "FAIL", "PASS", "SKIP", "SKIP", "SKIP"], outcome.out
    backend = outcome.lines["backend"]
    assert "no backend called 'nope'" in backend.detail
    assert re.search(r"choose one of: .*\blocal\b", backend.todo), backend.todo
    assert outcome.lines["round trip"].detail == \
        "skipped: because backend nope is not installed"
    assert outcome.status == 1


def test_cluster_backend_that_is_not_usable(tmp_path: Path) -> None:
    # Without the slurm_cluster fixture, clean_settings hides Slurm (SLURM_CONF).
    outcome = doctor("--backend", "slurm", "--temp-dir", str(tmp_path), "--json", cwd=tmp_path)
    report = json.loads(outcome.out)
    checks = {check["name"]: check for check in report["checks"]}
    assert [check["verdict"] for check in report["checks"]] == \
        ["PASS", "FAIL", "PASS", "SKIP", "SKIP", "SKIP"]
    assert "SLURM_CONF=" in checks["backend"]["detail"]
    assert "choose a backend that is usable here: local" in checks["backend"]["todo"]
    assert checks["temp_dir shared"]["detail"] == \
        "skipped: because backend slurm is not usable here"
    assert report["exit_status"] == outcome.status == 1


def test_missing_temp_dir_of_a_cluster_fails_and_is_not_made(slurm_cluster: str,
                                                             tmp_path: Path) -> None:
    missing = tmp_path / "scratch"
    outcome = doctor("--backend", "slurm", "--temp-dir", str(missing), cwd=tmp_path)
    assert verdicts(outcome) == ["PASS", "PASS", "FAIL", "SKIP", "SKIP", "SKIP"], outcome.out
    temp = outcome.lines["temp_dir writable"]
    assert temp.detail == f"{missing} does not exist"
    assert f"mkdir -p {missing}" in temp.todo and "DEFAULT_TEMP_DIR" in temp.todo
    assert "compute nodes" in temp.todo
    assert "keeps its jobs' files in temp_dir" in outcome.lines["round trip"].detail
    assert outcome.status == 1
    assert not missing.exists()


def test_missing_temp_dir_is_not_made_at_the_root(tmp_path: Path) -> None:
    # As the default /scratch/ would be: the doctor creates no directory anywhere.
    missing = tmp_path / "root" / "scratch"
    check = check_temp_dir(str(missing), cluster=True)
    assert check.verdict is Verdict.FAIL, check
    assert check.detail == f"{missing} does not exist"
    assert f"mkdir -p {missing}" in check.todo
    assert not missing.exists() and not missing.parent.exists()


def test_local_backend_runs_without_temp_dir(tmp_path: Path) -> None:
    missing = tmp_path / "scratch"
    outcome = doctor("--backend", "local", "--temp-dir", str(missing), cwd=tmp_path)
    assert_all_pass(outcome)
    assert outcome.lines["temp_dir writable"].detail.startswith(
        f"not needed: {missing} does not exist"), outcome.out
    assert not missing.exists()


def assert_monitor_unreachable(backend: str, cwd: Path, shared: str) -> None:
    address = f"tcp://127.0.0.1:{closed_port()}"
    outcome = doctor("--backend", backend, "--temp-dir", str(cwd), "--timeout", "20",
                     cwd=cwd, env={"GRIDMAP_MONITOR_ADDRESS": address,
                                   "MAX_TIME_BETWEEN_HEARTBEATS": "4"})
    assert verdicts(outcome) == ["PASS", "PASS", "PASS", "FAIL", "FAIL", shared], outcome.out
    assert outcome.lines["round trip"].todo.startswith("see 'nodes reach monitor' below")
    monitor = outcome.lines["nodes reach monitor"]
    assert monitor.detail.startswith(
        f"no job reached the monitor at {address} (set by environment variable "
        "GRIDMAP_MONITOR_ADDRESS)"), monitor.detail
    assert "GRIDMAP_MONITOR_ADDRESS" in monitor.todo
    assert "GRIDMAP_TRANSPORT=filesystem" in monitor.todo
    assert outcome.status == 1
    assert outcome.seconds < 20, "the runner did not give up on the monitor in time"


def test_monitor_unreachable_from_slurm_jobs(slurm_cluster: str, tmp_path: Path) -> None:
    assert_monitor_unreachable("slurm", tmp_path, shared="SKIP")


def test_monitor_unreachable_from_local_runners(tmp_path: Path) -> None:
    # The local backend's jobs reach the monitor only in runner mode; temp_dir
    # sharing is not needed there.
    (tmp_path / "gridmap.toml").write_text('[backends.local]\nmode = "runner"\n')
    assert_monitor_unreachable("local", tmp_path, shared="PASS")


def test_job_that_never_starts_times_out(slurm_cluster: str, tmp_path: Path) -> None:
    (tmp_path / "gridmap.toml").write_text('[backends.slurm]\nsbatch_options = "--hold"\n')
    outcome = doctor("--backend", "slurm", "--temp-dir", str(tmp_path), "--timeout", "6",
                     cwd=tmp_path)
    assert verdicts(outcome) == ["PASS", "PASS", "PASS", "FAIL", "SKIP", "SKIP"], outcome.out
    trip = outcome.lines["round trip"]
    assert trip.detail.startswith("no result within 6 s: the job did not start"), trip.detail
    assert "is held" in trip.detail
    assert trip.todo
    assert outcome.status == 1
    assert outcome.seconds < 17
    queue = subprocess.run(["squeue", "-h", "-n", "gridmap_doctor"], capture_output=True,
                           text=True, check=True)
    assert queue.stdout.strip() == "", "the doctor left its job queued"


def test_setting_that_is_not_valid_exits_2(tmp_path: Path) -> None:
    outcome = doctor("--temp-dir", str(tmp_path), cwd=tmp_path, env={"NUM_RESUBMITS": "many"})
    assert verdicts(outcome) == ["FAIL"] + ["SKIP"] * 5, outcome.out
    assert "NUM_RESUBMITS" in outcome.lines["settings"].detail
    assert "gridmap config" in outcome.lines["settings"].todo
    assert outcome.status == 2


def test_unknown_key_of_the_backends_section_is_named(tmp_path: Path) -> None:
    # A map on this backend refuses the key: the settings check must say so, not pass.
    (tmp_path / "gridmap.toml").write_text('[backends.local]\nmod = "runner"\n')
    outcome = doctor("--backend", "local", "--temp-dir", str(tmp_path), cwd=tmp_path)
    assert verdicts(outcome) == ["FAIL"] + ["SKIP"] * 5, outcome.out
    detail = outcome.lines["settings"].detail
    assert "unknown key 'mod' for backend 'local'" in detail, detail
    assert "gridmap.toml [backends.local]" in detail, detail
    assert outcome.status == 2


# -- the pieces --------------------------------------------------------------------------


def test_temp_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    check = check_temp_dir(str(path), cluster=False)
    assert check.verdict is Verdict.FAIL
    assert check.detail.endswith("exists but is not a directory")
    assert "compute nodes" not in check.todo  # advice for a local backend


def test_render_keeps_to_80_columns() -> None:
    check = Check("nodes reach monitor", Verdict.FAIL, "word " * 60, "advice " * 40)
    lines = render(check).splitlines()
    assert lines[0].startswith("FAIL  nodes reach monitor word")
    assert all(len(line) <= 80 for line in lines)
    assert any(line.startswith("      what to do: advice") for line in lines)
    assert exit_status([check]) == 1
    assert exit_status([Check("settings", Verdict.FAIL, "x", config_error=True)]) == 2
    assert exit_status([Check("settings", Verdict.PASS, "x")]) == 0


def test_scheduler_evidence_must_name_the_submitted_job() -> None:
    assert scheduler_evidence("123", {"JOB_ID": "123"}) == "JOB_ID=123"
    assert scheduler_evidence("77_1", {"SLURM_ARRAY_JOB_ID": "77", "SLURM_JOB_ID": "78"}) == \
        "SLURM_ARRAY_JOB_ID=77"
    assert scheduler_evidence("123", {"JOB_ID": "999"}) == ""
    assert scheduler_evidence("123", {}) == ""


# -- diagnosis from the kind of death, not its wording -------------------------------------


def test_the_round_trip_blames_the_monitor_by_the_kind_of_death_not_its_words(
        tmp_path: Path) -> None:
    from gridmap_core.doctor.trip import Trip, check_monitor, check_round_trip
    from gridmap_core.doctor.verdicts import MONITOR, ROUND_TRIP, Plan
    from gridmap_core.model.config import load_settings
    from gridmap_core.model.death import DeathKind
    from gridmap_core.plugins.manager import get_plugin_manager

    plan = Plan(load_settings({"DEFAULT_TEMP_DIR": str(tmp_path)}), "local", "test")
    spec = get_plugin_manager().backend("local")
    # Words that once meant "unheard", on a death of another kind, and the reverse.
    worded = Trip("t", cause="no heartbeat for 9 s, as its scheduler killed it",
                  death_kind=DeathKind.KILLED)
    unworded = Trip("t", cause="the runner gave up", death_kind=DeathKind.UNREACHABLE,
                    address="tcp://10.0.0.1:5555")
    assert check_round_trip(worded, plan, spec).todo.startswith("read the cause above")
    assert check_monitor(worded, plan, spec).name == MONITOR
    assert check_monitor(worded, plan, spec).verdict is Verdict.SKIP
    round_trip = check_round_trip(unworded, plan, spec)
    assert (round_trip.name, round_trip.verdict) == (ROUND_TRIP, Verdict.FAIL)
    assert round_trip.todo.startswith("see 'nodes reach monitor' below")
    monitor = check_monitor(unworded, plan, spec)
    assert monitor.verdict is Verdict.FAIL and "tcp://10.0.0.1:5555" in monitor.detail
