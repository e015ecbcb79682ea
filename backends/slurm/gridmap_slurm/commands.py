"""Running Slurm's command-line tools, with retries when the controller is briefly
unreachable (restarting, failing over, overloaded): such errors are waited out with
growing pauses, not reported as the job's or the map's failure."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gridmap_core.errors import GridMapError

__all__ = ["Commands", "SlurmError", "is_transient", "one_line"]
logger = logging.getLogger(__name__)

# Messages of Slurm 20-25 clients when slurmctld cannot be reached or is too busy to
# answer; the request may be repeated.
_TRANSIENT = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Zero Bytes were transmitted"
    r"|Transport endpoint is not connected|Connection refused|Connection reset"
    r"|Resource temporarily unavailable|backup controller|in standby mode"
    r"|Slurm temporarily unable|Communication connection failure|connect failure"
    r"|Slurmctld is busy|Too many pending RPCs|Slurm controller not responding",
    re.IGNORECASE,
)


class SlurmError(GridMapError, RuntimeError):
    """A Slurm command failed (and retrying did not help, or could not)."""


def one_line(output: str, tool: str) -> str:
    """A tool's error output on one line, without its ``sbatch: error:`` prefixes."""
    lines = (line.strip() for line in output.splitlines())
    return "; ".join(line.removeprefix(f"{tool}: error: ").removeprefix(f"{tool}: ")
                     for line in lines if line)


def is_transient(message: str) -> bool:
    """Whether a failed command's message says the controller was unreachable."""
    return bool(_TRANSIENT.search(message))


@dataclass
class Commands:
    """Runs Slurm commands. ``retry_for`` bounds how long transient failures are
    retried; ``timeout`` bounds each call (a hung call counts as transient)."""

    retry_for: float = 120.0
    timeout: float = 60.0
    first_pause: float = 0.5
    longest_pause: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    def once(self, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` once; a timeout comes back as exit status 124 with a message."""
        try:
            return subprocess.run(list(argv), capture_output=True, text=True, check=False,
                                  timeout=self.timeout, env=dict(env) if env is not None else None)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(
                list(argv), 124, "", f"{argv[0]}: Socket timed out: no answer in "
                f"{self.timeout:g} s")
        except FileNotFoundError:
            raise SlurmError(f"{argv[0]} is not on PATH: install Slurm's client tools "
                             "(Debian: slurm-client)") from None

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None, *,
            before_retry: Callable[[], subprocess.CompletedProcess[str] | None] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv``, retrying transient failures; raise :class:`SlurmError` when it
        fails otherwise or for longer than ``retry_for``. ``before_retry`` may find that
        a timed-out request took effect after all and return the result to use."""
        deadline = time.monotonic() + self.retry_for
        pause = self.first_pause
        told = False
        while True:
            done = self.once(argv, env)
            if done.returncode == 0:
                if told:
                    logger.warning("%s works again", argv[0])
                return done
            tool = os.path.basename(argv[0])
            message = one_line(done.stderr or done.stdout, tool)
            transient = is_transient(message)
            if not transient or time.monotonic() + pause > deadline:
                # A request that timed out may have taken effect all the same: look
                # once more before reporting it failed.
                found = before_retry() if transient and before_retry is not None else None
                if found is not None:
                    return found
                raise SlurmError(f"{tool} failed (exit status {done.returncode}): "
                                 f"{message or 'no message'}")
            if not told:
                logger.warning("%s failed, retrying for up to %.0f s: %s", tool,
                               self.retry_for, message)
                told = True
            self.sleep(pause)
            pause = min(pause * 2, self.longest_pause)
            if before_retry is not None:
                found = before_retry()
                if found is not None:
                    return found
