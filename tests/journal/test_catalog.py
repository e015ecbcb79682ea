"""The catalog finds this user's maps by their journals, tells whether anyone still
serves each, resolves the keys commands are given, and judges which session
directories may go."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gridmap_core.journal.catalog import (
    DAMAGED,
    MapNotFound,
    judge,
    maps,
    resolve,
    submitter_alive,
    summary,
)
from gridmap_core.journal.store import JOURNAL
from gridmap_core.map.sessions import clean, remove_abandoned
from gridmap_core.wire import beacon
from tests.journal import age_files, make_map

HOUR = 3600.0


def test_maps_lists_each_map_with_its_counts_state_and_submitter(tmp_path: Path) -> None:
    older = make_map(tmp_path, "a1111", name="squares",
                     states=["succeeded", "succeeded", "failed", "running"],
                     created=time.time() - HOUR)
    newer = make_map(tmp_path, "b2222", name="cubes", states=["dead", "queued"],
                     submitter="gone")
    (tmp_path / "gridmap-older-gridmap").mkdir()  # no journal: not a map listed
    (tmp_path / "unrelated").mkdir()
    first, second = maps([tmp_path])
    assert (first.id, first.name, first.directory) == ("a1111", "squares", older)
    assert first.counts == {"succeeded": 2, "failed": 1, "running": 1}
    assert first.counts_text() == "2 succeeded, 1 failed, 1 running"
    assert first.state == "running" and first.alive is True
    assert first.age is not None and first.age >= HOUR
    assert (second.id, second.directory, second.alive) == ("b2222", newer, False)
    assert second.counts_text() == "1 dead, 1 queued"


def test_whether_a_map_is_served(tmp_path: Path) -> None:
    assert submitter_alive(make_map(tmp_path, "here")) is True
    assert submitter_alive(make_map(tmp_path, "gone", submitter="gone")) is False
    # Another machine's submitter: monitor.json's touches tell.
    assert submitter_alive(make_map(tmp_path, "far-fresh", submitter="elsewhere",
                                    monitor=1.0)) is True
    assert submitter_alive(make_map(tmp_path, "far-stale", submitter="elsewhere",
                                    monitor=HOUR)) is False
    assert submitter_alive(make_map(tmp_path, "far-silent", submitter="elsewhere")) is None
    # Where the process can be checked, its death is the answer (a monitor that takes
    # the map on records itself as its process).
    assert submitter_alive(make_map(tmp_path, "just-killed", submitter="gone",
                                    monitor=1.0)) is False


def test_resolve_by_id_prefix_name_and_directory(tmp_path: Path) -> None:
    first = make_map(tmp_path, "c0ffee01", name="squares", created=time.time() - HOUR)
    second = make_map(tmp_path, "c0ffee02", name="squares")
    other = make_map(tmp_path, "d00d", name="cubes")
    roots = [tmp_path]
    assert resolve("c0ffee01", roots) == first
    assert resolve("d0", roots) == other
    assert resolve(first.name, roots) == first  # the directory's own name
    assert resolve(str(other), roots) == other
    told: list[str] = []
    assert resolve("squares", roots, tell=told.append) == second  # the newest
    assert "2 maps are named 'squares'" in told[0] and "c0ffee02" in told[0]
    assert resolve("cubes", roots, tell=told.append) == other and len(told) == 1
    with pytest.raises(MapNotFound, match="c0ffee01, c0ffee02"):
        resolve("c0ffee", roots)


def test_a_map_not_found_says_what_was_looked_for_and_where(tmp_path: Path) -> None:
    make_map(tmp_path, "e1")
    with pytest.raises(MapNotFound) as caught:
        resolve("nosuchmap", [tmp_path])
    message = str(caught.value)
    assert "'nosuchmap'" in message and str(tmp_path) in message
    assert "gridmap maps" in message
    with pytest.raises(MapNotFound, match="does not exist"):
        resolve(str(tmp_path / "gridmap-gone"), [tmp_path])
    bare = tmp_path / "gridmap-old"
    bare.mkdir()
    with pytest.raises(MapNotFound, match="holds no map journal"):
        resolve(str(bare), [tmp_path])


def test_a_damaged_journal_is_listed_with_what_the_other_files_say(tmp_path: Path) -> None:
    broken = make_map(tmp_path, "f1", states=["succeeded"] * 50, submitter="gone")
    make_map(tmp_path, "f2")
    path = broken / JOURNAL
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    (broken / "logs").mkdir()
    (broken / "logs" / "squares.0.0.out").write_text("hello\n")
    listed = {one.directory: one for one in maps([tmp_path])}
    assert len(listed) == 2
    damaged = listed[broken]
    assert damaged.state == DAMAGED and damaged.id == "1f"
    assert damaged.problem is not None and str(path) in damaged.problem
    assert damaged.files["log_files"] == 1 and damaged.files["launched_jobs"] == 50
    assert JOURNAL in damaged.files["files"] and damaged.alive is False


# -- what becomes of session directories ------------------------------------------


def test_clean_rules(tmp_path: Path) -> None:
    now = time.time()
    ended_long_ago = make_map(tmp_path, "g1", state="succeeded", submitter="gone",
                              ended=now - 2 * HOUR)
    ended_lately = make_map(tmp_path, "g2", state="failed", submitter="gone",
                            ended=now - 60)
    # Killed, its monitor.json still within MONITOR_GRACE: gridmap attach can take it.
    attachable = make_map(tmp_path, "g3", submitter="gone", monitor=60)
    living = make_map(tmp_path, "g4", created=now - 2 * HOUR)
    age_files(living, 2 * HOUR)
    # Its submitter lives on (an interactive Python), done with the map.
    ended_living = make_map(tmp_path, "g9", state="succeeded", ended=now - 2 * HOUR)
    # Ended, yet its monitor (on another machine) still shows it lives.
    ended_served = make_map(tmp_path, "g10", state="succeeded", submitter="elsewhere",
                            monitor=1, ended=now - 2 * HOUR)
    served_elsewhere = make_map(tmp_path, "g5", submitter="elsewhere", monitor=1)
    given_up = make_map(tmp_path, "g6", submitter="gone", monitor=3 * HOUR)
    (given_up / beacon.ABANDONED).write_text(json.dumps({"why": "no monitor",
                                                         "at": now - 2 * HOUR}))
    unserved = make_map(tmp_path, "g7", submitter="gone", monitor=3 * HOUR)
    age_files(unserved, 3 * HOUR)
    unseen = make_map(tmp_path, "g8", submitter="elsewhere")  # cannot be told
    lines = clean([tmp_path], keep=HOUR, grace=600)
    left = {path for path in tmp_path.iterdir() if path.name.startswith("gridmap-")}
    assert left == {ended_lately, attachable, living, served_elsewhere, unseen,
                    ended_served}, lines
    assert {ended_long_ago, given_up, unserved, ended_living}.isdisjoint(left)
    assert any(str(ended_long_ago) in line and "ended (succeeded)" in line for line in lines)
    assert lines[-1].startswith("6 session directories left")
    assert "gridmap attach can take on" in lines[-1]


def test_the_next_map_keeps_an_attachable_map_and_removes_one_past_its_time(
        tmp_path: Path) -> None:
    attachable = make_map(tmp_path, "h1", submitter="gone", monitor=60)
    ended = make_map(tmp_path, "h2", state="cancelled", submitter="gone",
                     ended=time.time() - 2 * HOUR)
    assert remove_abandoned(tmp_path, keep=HOUR, grace=600) == [ended]
    assert attachable.exists()
    # Past MONITOR_GRACE it is abandoned; with MAP_KEEP_TIME 0 it goes at once.
    assert remove_abandoned(tmp_path, keep=0, grace=30) == [attachable]


def test_judge_says_how_long_a_map_is_kept(tmp_path: Path) -> None:
    now = time.time()
    found = summary(make_map(tmp_path, "i1", state="succeeded", submitter="gone",
                             ended=now - 60))
    assert found is not None
    kept = judge(found, keep=HOUR, grace=600, now=now)
    assert not kept.remove and kept.kind == "kept" and "MAP_KEEP_TIME" in kept.why
    assert judge(found, keep=30, grace=600, now=now).remove
