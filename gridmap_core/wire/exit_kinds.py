"""The kind of death that a runner's exit status means, for the monitor and the
backends alike (one table, so that a scheduler's verdict and the monitor's agree)."""

from __future__ import annotations

from gridmap_core.model.death import DeathKind
from gridmap_core.wire.exits import (
    EXIT_LOST,
    EXIT_MAP_ENDED,
    EXIT_NOT_SHARED,
    EXIT_SETUP,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
)

__all__ = ["kind_of_exit", "worth_resubmitting"]

# The runner's own exit statuses; any other status is a runner (or job) that exited.
_EXIT_KINDS = {EXIT_UNREACHABLE: DeathKind.UNREACHABLE, EXIT_LOST: DeathKind.MONITOR_LOST,
               EXIT_SETUP: DeathKind.RUNNER_FAILED, EXIT_STOPPED: DeathKind.CANCELLED,
               EXIT_NOT_SHARED: DeathKind.RUNNER_FAILED,
               # It waited for a monitor that was gone until the map was given up: a
               # map taken on later runs the job again.
               EXIT_MAP_ENDED: DeathKind.MONITOR_LOST}


def kind_of_exit(exit_status: int | None, unknown: DeathKind = DeathKind.OTHER) -> DeathKind:
    """The kind of death of a runner that ended with ``exit_status`` without a result.

    A negative status is a kill by signal ``-exit_status``; ``None`` (the scheduler
    does not say) is ``unknown``.
    """
    if exit_status is None:
        return unknown
    if exit_status < 0:
        return DeathKind.KILLED
    return _EXIT_KINDS.get(exit_status, DeathKind.EXITED)


def worth_resubmitting(exit_status: int | None) -> bool:
    """Whether a runner that ended with ``exit_status`` may do better in a new job.
    Not one that could not see temp_dir: every job of the map would fail the same
    way, so the map ends with the cause instead of resubmitting NUM_RESUBMITS times."""
    return exit_status != EXIT_NOT_SHARED
