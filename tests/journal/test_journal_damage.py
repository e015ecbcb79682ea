"""A journal that cannot be read or written (errors that name the file, a map that
goes on, nothing on disk removed), and what a journal must not keep."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gridmap_core.face.attach import attach
from gridmap_core.journal.store import JOURNAL, Journal, JournalError
from tests.support import monitored
from tests.support.monitored import runner_executor


def _ended_map(temp: Path) -> Path:
    with runner_executor({"DEFAULT_TEMP_DIR": str(temp)}) as executor:
        assert list(executor.map(monitored.sleep_for, [0, 0])) == [0, 0]
    (session,) = temp.iterdir()
    return session


def test_a_truncated_journal_is_an_error_that_names_it_and_removes_nothing(
        tmp_path: Path) -> None:
    session = _ended_map(tmp_path)
    journal = session / JOURNAL
    journal.write_bytes(journal.read_bytes()[:1000])  # as a full disk would leave it
    before = sorted(path.name for path in session.iterdir())
    with pytest.raises(JournalError, match=str(journal)) as raised:
        attach(str(session))
    assert "damaged or truncated" in str(raised.value)
    # Nothing removed (reading it may add SQLite's -wal and -shm files).
    assert set(before) <= {path.name for path in session.iterdir()}
    assert journal.stat().st_size == 1000


def test_a_journal_that_cannot_be_written_stops_the_record_not_the_map(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    def full_disk(self: Journal, *, every: float = 0.0) -> None:
        raise JournalError(f"map journal {self.path}: database or disk is full")

    monkeypatch.setattr(Journal, "flush", full_disk)
    with caplog.at_level(logging.ERROR), runner_executor(
            {"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor:
        assert list(executor.map(monitored.sleep_for, [0, 0, 0])) == [0, 0, 0]
    said = [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR]
    assert len(said) == 1 and "disk is full" in said[0] and "not recorded" in said[0], said


def test_the_journal_keeps_no_environment_and_no_secret_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_NOT_A_SETTING", "hunter2-environment")
    monkeypatch.setenv("SMTP_USER", "someone")
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-secret-setting")
    session = _ended_map(tmp_path)
    kept = b"".join(path.read_bytes() for path in session.glob("journal.sqlite*"))
    assert b"hunter2" not in kept
    assert b"DEFAULT_TEMP_DIR" in kept  # the settings' values are there
