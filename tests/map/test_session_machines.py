"""A session directory is tidied away only when its submitter ran on this machine and
is gone: another machine with the same host name (cloned login nodes, containers all
named alike) sharing temp_dir keeps its running maps' directories."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from gridmap_core.map.sessions import (
    SUBMITTER,
    abandoned,
    machine,
    record_submitter,
    remove_abandoned,
    sessions_in,
)

GONE = 2**22 + 7  # a pid above the kernel's limit: no process has it


def _session(root: Path, name: str, **record: object) -> Path:
    path = root / f"gridmap-{name}"
    path.mkdir(mode=0o700)
    (path / SUBMITTER).write_text(json.dumps({"host": socket.gethostname(), "pid": GONE,
                                              "started": 1.0, "ended": False, **record}))
    return path


def test_the_record_says_which_machine_and_process_ids(tmp_path: Path) -> None:
    directory = tmp_path / "gridmap-running"
    directory.mkdir()
    record_submitter(directory)
    record = json.loads((directory / SUBMITTER).read_text())
    assert record["boot"] == machine()["boot"] and record["pids"] == machine()["pids"]
    assert record["boot"] and record["pids"]  # Linux says both
    (session,) = sessions_in(tmp_path)
    assert session.here and not abandoned(session)  # this very process


def test_a_gone_submitter_of_another_machine_with_this_host_name_is_left_alone(
        tmp_path: Path) -> None:
    other_boot = _session(tmp_path, "other-boot", boot="0" * 8 + "-not-this-boot")
    other_pids = _session(tmp_path, "other-pids", pids="pid:[1]")
    mine = _session(tmp_path, "mine", **machine())
    older = _session(tmp_path, "older")  # recorded before machines were: by name only
    assert not any(abandoned(s) for s in sessions_in(tmp_path)
                   if s.path in (other_boot, other_pids))
    assert sorted(remove_abandoned(tmp_path)) == sorted([mine, older])
    assert other_boot.exists() and other_pids.exists()
