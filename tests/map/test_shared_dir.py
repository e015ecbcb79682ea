"""A temp_dir that only this host sees is refused before any job is submitted, when
the scheduler's nodes include other hosts; on a one-host cluster nothing changes."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from gridmap_core.backend import SessionOptions
from gridmap_core.backend.scheduler import JobStatus, Launch
from gridmap_core.errors import GridMapError
from gridmap_core.map.monitor import MonitoredSession, open_monitored
from gridmap_core.map.shared_dir import (
    TempDirNotShared,
    check_shared,
    file_system_type,
    local_reason,
    other_hosts,
)
from gridmap_core.model.config import load_settings
from tests.support import monitored

OTHERS = ("node-a.invalid", "node-b.invalid", "node-c.invalid", "node-d.invalid")


@pytest.mark.parametrize("path", ["/tmp", "/tmp/gridmap", "/var/tmp/x", "/dev/shm/x",
                                  "/run/user/1000/x", "/tmp/../tmp/x"])
def test_directories_every_host_has_its_own_of_are_local(path: str) -> None:
    reason = local_reason(path)
    assert reason is not None and "of its own" in reason, reason


@pytest.mark.parametrize("path", ["/home/me/gridmap", "/scratch/", "/srv/shared/x",
                                  "/tmpfoo/x", "/nfs/tmp"])
def test_other_directories_may_be_shared(path: str, tmp_path: Path) -> None:
    # No mount table: only the path counts.
    assert local_reason(path, mountinfo=str(tmp_path / "none")) is None


def test_a_link_to_tmp_is_local_and_so_is_a_path_through_tmp(tmp_path: Path) -> None:
    home = Path.home()
    link = home / f".gridmap-test-link-{os.getpid()}"
    link.symlink_to(tmp_path)
    try:
        reason = local_reason(str(link))
    finally:
        link.unlink()
    assert reason is not None and "/tmp" in reason and str(link) in reason, reason
    # A link in /tmp to a shared directory: the nodes go through their own /tmp.
    through = tmp_path / "to-home"
    through.symlink_to(home)
    assert local_reason(str(through)) is not None


MOUNTINFO = """\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
40 22 0:40 / /scratch rw,relatime shared:9 - tmpfs scratch rw,size=1g
41 22 0:41 / /home rw,relatime shared:10 - nfs4 server:/home rw
42 41 0:42 / /home/me/ram\\040disk rw - ramfs none rw
"""


def test_a_tmpfs_anywhere_is_local(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    assert file_system_type("/scratch/me", str(table)) == ("tmpfs", "/scratch")
    assert file_system_type("/home/me/x", str(table)) == ("nfs4", "/home")
    assert file_system_type("/home/me/ram disk/x", str(table)) == ("ramfs", "/home/me/ram disk")
    reason = local_reason("/scratch/me", mountinfo=str(table))
    assert reason is not None and "tmpfs" in reason and "/scratch" in reason, reason
    assert local_reason("/home/me/gridmap", mountinfo=str(table)) is None
    assert local_reason("/home/me/ram disk/x", mountinfo=str(table)) is not None


def test_this_host_by_name_or_address_is_no_other_host() -> None:
    me = socket.gethostname()
    assert other_hosts([me, me.upper(), f"{me}.example.org", "localhost", "127.0.0.1"]) == []
    assert other_hosts([me, *OTHERS]) == list(OTHERS)
    assert other_hosts(OTHERS, limit=1) == [OTHERS[0]]


def test_a_local_temp_dir_is_refused_for_other_hosts_with_what_to_do() -> None:
    with pytest.raises(TempDirNotShared) as raised:
        check_shared("/tmp/gridmap", OTHERS)
    message = str(raised.value)
    assert isinstance(raised.value, GridMapError)
    assert "/tmp/gridmap" in message and "node-a.invalid" in message
    assert "and 1 more" in message
    assert "DEFAULT_TEMP_DIR" in message and "temp_dir=" in message
    assert str(Path.home()) in message
    assert raised.value.hosts == OTHERS and raised.value.temp_dir == "/tmp/gridmap"
    assert str(pickle.loads(pickle.dumps(raised.value))) == message


def test_a_local_temp_dir_is_fine_when_jobs_run_here_or_nodes_are_unknown() -> None:
    check_shared("/tmp/gridmap", [socket.gethostname()])
    check_shared("/tmp/gridmap", [])
    check_shared(str(Path.home()), OTHERS)


class _Scheduler:
    """A scheduler of other hosts that records what it was asked to do."""

    def __init__(self, peers: Sequence[str]) -> None:
        self.nodes = tuple(peers)
        self.launched: list[Launch] = []
        self.closed = False

    def peers(self) -> tuple[str, ...]:
        return self.nodes

    def launch(self, launch: Launch) -> list[str]:
        self.launched.append(launch)
        return [str(n) for n in range(len(launch.tasks))]

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {}

    def cancel(self, ids: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_the_monitor_refuses_before_it_makes_or_submits_anything(tmp_path: Path) -> None:
    assert local_reason(str(tmp_path)) is not None  # pytest's directories are in /tmp
    settings = load_settings(monitored.FAST)
    scheduler = _Scheduler(OTHERS)
    with pytest.raises(TempDirNotShared, match="DEFAULT_TEMP_DIR"):
        open_monitored(scheduler, SessionOptions(settings=settings, temp_dir=str(tmp_path)),
                       name="test-monitor")
    assert scheduler.launched == [] and scheduler.closed
    assert list(tmp_path.iterdir()) == []


def test_the_monitor_of_a_one_host_cluster_takes_a_temp_dir_in_tmp(tmp_path: Path) -> None:
    settings = load_settings(monitored.FAST)
    session = MonitoredSession(_Scheduler([socket.gethostname()]),
                               SessionOptions(settings=settings), work_dir=str(tmp_path))
    try:
        assert session.directory.parent == tmp_path
    finally:
        session.close()



def test_a_relative_temp_dir_reaches_the_nodes_as_an_absolute_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Jobs may start in another working directory than the submitting process's.
    (tmp_path / "relative").mkdir()
    monkeypatch.chdir(tmp_path)
    settings = load_settings(monitored.FAST)
    session = MonitoredSession(_Scheduler([socket.gethostname()]),
                               SessionOptions(settings=settings), work_dir="relative")
    try:
        assert session.directory.is_absolute() and session.directory.parent == \
            tmp_path / "relative"
        assert os.path.isabs(session.log_dir) and os.path.isabs(session.key_file)
        key_file = session.runner[session.runner.index("--key-file") + 1]
        assert key_file == session.key_file
    finally:
        session.close()
