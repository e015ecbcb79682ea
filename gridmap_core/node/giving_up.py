"""Giving up on a map whose monitor did not come back within the grace: the first
runner to give up marks the map ``abandoned`` and cancels the map's other scheduler
jobs in one call, so that nothing queued waits for a monitor that will not come; every
other runner sees the mark and exits without cancelling anything again."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping

from gridmap_core.wire import beacon

__all__ = ["CANCEL_TIMEOUT", "abandon_map", "cancel_other_jobs", "own_job_ids"]

# The runner's one logger, "gridmap.runner", whichever of its modules speaks.
logger = logging.getLogger("gridmap.runner")

# Seconds the cancel command gets: a scheduler that is slow to answer must not keep
# the runner (and its node's slot) for ever.
CANCEL_TIMEOUT = 60.0


def own_job_ids(environ: Mapping[str, str] | None = None) -> set[str]:
    """The ids under which the map's ``launched`` file may list this runner's own
    scheduler job: Slurm's ``ARRAY_INDEX`` or job id, Grid Engine's ``JOB.TASK`` or
    job id. Empty when no scheduler says."""
    env = os.environ if environ is None else environ
    ids: set[str] = set()
    array, index = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array and index:
        ids.add(f"{array}_{index}")
    if env.get("SLURM_JOB_ID"):
        ids.add(env["SLURM_JOB_ID"])
    job, task = env.get("JOB_ID"), env.get("SGE_TASK_ID", "")
    if job:
        # Grid Engine sets SGE_TASK_ID to "undefined" in a job that is no array.
        ids.add(f"{job}.{task}" if task.isdigit() else job)
    return ids


def abandon_map(directory: str, why: str) -> bool:
    """Mark the map of ``directory`` abandoned, saying ``why``; when this call made the
    mark (no runner gave up before), cancel the map's other jobs. True when it did."""
    try:
        made = beacon.mark(directory, beacon.ABANDONED, why)
    except OSError as error:
        logger.error("cannot mark the map abandoned in %s: %s", directory, error)
        return False
    if not made:
        logger.info("the map was marked abandoned already (%s): its jobs were cancelled "
                    "by the runner that marked it", beacon.mark_reason(directory,
                                                                     beacon.ABANDONED))
        return False
    logger.error("giving up on the map: %s. Marked it abandoned in %s", why, directory)
    cancel_other_jobs(directory)
    return True


def cancel_other_jobs(directory: str, environ: Mapping[str, str] | None = None,
                      timeout: float = CANCEL_TIMEOUT) -> None:
    """Cancel, in one call of the scheduler's cancel command, every job the map's
    ``launched`` file lists but this runner's own (which ends by itself right after).
    When this runner cannot tell its own id, the call includes every id: it is the
    last thing the runner does, so being cancelled by it loses nothing."""
    ids, command = beacon.launched(directory)
    own = own_job_ids(environ)
    others = [job_id for job_id in ids if job_id not in own]
    if not others:
        logger.info("the map has no other scheduler job to cancel")
        return
    if not command:
        logger.warning("the map's list of jobs (%s) names no cancel command: its %d other "
                       "job(s) are left to the scheduler", os.path.join(directory,
                                                                      beacon.LAUNCHED),
                       len(others))
        return
    if not own.intersection(ids):
        logger.info("this runner's own scheduler job is not known among the map's: the "
                    "cancel may include it, so it comes last")
    logger.info("cancelling the map's %d other job(s) with %s", len(others),
                shlex.join(command))
    try:
        done = subprocess.run([*command, *others], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        logger.error("the cancel command %s did not end within %.0f s: the map's jobs "
                     "may still be queued; cancel them by hand", shlex.join(command), timeout)
        return
    except OSError as error:
        logger.error("cannot run the cancel command %s: %s; cancel the map's jobs by hand "
                     "(their ids are in %s)", shlex.join(command), error,
                     os.path.join(directory, beacon.LAUNCHED))
        return
    said = " ".join((done.stderr or done.stdout).split())[-500:]
    if done.returncode == 0:
        logger.info("cancelled %d job(s) of the map%s", len(others),
                    f" ({said})" if said else "")
    else:
        # A scheduler refuses ids of jobs that have ended already: say it, no more.
        logger.warning("the cancel command exited with status %d for the map's %d other "
                       "job(s)%s", done.returncode, len(others), f": {said}" if said else "")
