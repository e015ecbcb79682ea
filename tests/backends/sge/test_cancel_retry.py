"""A cancel that Grid Engine refused (its qmaster away) is asked again by the next cancel
of the same jobs, not counted done; the targets after the refused one too."""

from __future__ import annotations

import pytest

from gridmap_core.backend.drmaa import DrmaaError
from tests.backends.sge.fakes import Harness


def test_a_refused_cancel_is_made_again(harness: Harness, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    ids = harness.launch([0, 1, 2])
    more = harness.launch([3, 4])
    asked: list[str] = []

    def away(target: str) -> None:
        asked.append(target)
        raise DrmaaError('unable to contact qmaster using port 7454 on host "mn-head"')

    monkeypatch.setattr(harness.connection, "terminate", away)
    with pytest.raises(DrmaaError):
        harness.scheduler.cancel([ids[0], more[0]])
    assert asked == ["100.1"]  # the first refusal ends the call
    monkeypatch.undo()
    harness.scheduler.cancel([ids[0], more[0]])
    assert harness.connection.terminated == ["100.1", "101.1"]
    harness.scheduler.cancel([ids[0], more[0]])
    assert harness.connection.terminated == ["100.1", "101.1"]
