"""What the doctor's checks are made of: their names, a :class:`Verdict`, a
:class:`Check` (one check's outcome) and the :class:`Plan` the checks after the first
work with.

Both the checks (:mod:`gridmap_core.doctor.checks`) and the round trip
(:mod:`gridmap_core.doctor.trip`) build on these, so neither needs the other's module
for them: the checks run the round trip, and the round trip imports only this.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gridmap_core.model.config import Settings

__all__ = ["BACKEND", "MONITOR", "NAMES", "ROUND_TRIP", "SETTINGS", "SHARED", "TEMP_DIR",
           "Check", "Plan", "Verdict"]

SETTINGS, BACKEND, TEMP_DIR = "settings", "backend", "temp_dir writable"
ROUND_TRIP, MONITOR, SHARED = "round trip", "nodes reach monitor", "temp_dir shared"
NAMES = (SETTINGS, BACKEND, TEMP_DIR, ROUND_TRIP, MONITOR, SHARED)


class Verdict(str, enum.Enum):
    """How a check came out. A check that is not needed here passes."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``detail`` says what was found, ``todo`` what to do about a
    failure; ``config_error`` marks a failure caused by a setting that is not valid."""

    name: str
    verdict: Verdict
    detail: str
    todo: str = ""
    config_error: bool = False

    @property
    def failed(self) -> bool:
        """Whether the check failed."""
        return self.verdict is Verdict.FAIL


@dataclass(frozen=True)
class Plan:
    """What the checks after the first one work with: the settings as they apply to
    the backend, its name (None when none could be chosen) and where the choice came
    from (or why none could be made)."""

    settings: Settings
    backend: str | None
    why: str

    @property
    def temp_dir(self) -> str:
        """The directory jobs keep their files in (DEFAULT_TEMP_DIR or ``--temp-dir``)."""
        return str(self.settings["DEFAULT_TEMP_DIR"])

    @property
    def transport(self) -> str:
        """The transport runners reach the monitor with."""
        return str(self.settings["TRANSPORT"])
