"""A first run as a new user makes it: quiet, and saying where its jobs ran.

No mail server is set up and nothing is configured; the submitting process must then
print its results and no warnings. A map whose backend the code did not name says
once, on stderr, which backend runs it and why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT
QUICKSTART = ROOT / "examples" / "quickstart.py"

pytestmark = pytest.mark.timeout(120)


def new_user(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user who configured nothing: mail on by default, to the
    SMTP server guessed from the host's name."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("SEND_ERROR_MAIL", "SMTP_SERVER", "GRIDMAP_BACKEND")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               PYTHONPATH=str(ROOT), **extra)
    return env


def run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, *args], cwd=work, env=new_user(tmp_path, **extra),
                          capture_output=True, text=True, timeout=100)


def test_the_quickstart_prints_its_results_and_nothing_else(tmp_path: Path) -> None:
    done = run([str(QUICKSTART)], tmp_path)
    assert done.returncode == 0, done.stderr
    # Its failing job would have mailed the guessed server: no warning about that.
    assert done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [
        "jobs run on backend local",
        "hypotenuses: [5.0, 13.0, 17.0, 25.0]",
        "closures too: [0, 10, 20, 30, 40]",
        "failed jobs are named with their remote traceback: divide1: ZeroDivisionError",
    ]


TWO_MAPS = "from gridmap_core import grid_map\nprint(grid_map(abs, [-1]{args}), " \
           "grid_map(abs, [-2]{args}))\n"


def test_a_backend_chosen_automatically_is_named_once(tmp_path: Path) -> None:
    done = run(["-c", TWO_MAPS.format(args="")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[1] [2]\n"
    assert done.stderr.splitlines() == [
        "gridmap: jobs run on backend local, on this machine, as no backend is named "
        "(backend=, GRIDMAP_BACKEND or a config file) and no cluster backend is usable "
        "here (`gridmap backends` says why)"]


def test_a_backend_named_outside_the_code_is_named_once(tmp_path: Path) -> None:
    done = run(["-c", TWO_MAPS.format(args="")], tmp_path, GRIDMAP_BACKEND="local")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "gridmap: jobs run on backend local (environment variable GRIDMAP_BACKEND)"]


@pytest.mark.parametrize("args", [", local=True", ", backend='local'"])
def test_a_backend_the_code_names_is_not_repeated(tmp_path: Path, args: str) -> None:
    done = run(["-c", TWO_MAPS.format(args=args)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_with_logging_set_up_each_map_logs_its_backend(tmp_path: Path) -> None:
    script = ("import logging\nlogging.basicConfig(level=logging.INFO, "
              "format='%(name)s %(levelname)s %(message)s')\n"
              + TWO_MAPS.format(args=", local=True, name='m'"))
    done = run(["-c", script], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("gridmap.backend")]
    assert lines == ["gridmap.backend INFO m: jobs run on backend local (local=True)"] * 2
