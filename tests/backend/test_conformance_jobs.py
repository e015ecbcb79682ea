"""The conformance suite's own jobs: a job a test ends must end, even where the test
removed the file's folder before the job looked again."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from gridmap_core.testing.jobs import wait_for_file


def _waiting(path: Path) -> threading.Thread:
    thread = threading.Thread(target=wait_for_file, args=(str(path), 60, 0), daemon=True)
    thread.start()
    return thread


def test_a_waiting_job_ends_when_its_file_appears(tmp_path: Path) -> None:
    thread = _waiting(tmp_path / "release")
    (tmp_path / "release").touch()
    thread.join(10)
    assert not thread.is_alive()


def test_a_waiting_job_ends_when_its_folder_is_removed(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    thread = _waiting(folder / "release")
    thread.join(0.5)
    assert thread.is_alive()  # still waiting for the file
    shutil.rmtree(folder)
    thread.join(10)
    assert not thread.is_alive()
