"""The code stays ruff- and mypy-clean, and its parts keep their borders: a lint or type
error, or an import that breaks a contract of [tool.importlinter] in pyproject.toml, fails
the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT
PACKAGES = ["gridmap_core", "gridmap", "backends/local/gridmap_local", "backends/sge/gridmap_sge",
            "backends/slurm/gridmap_slurm", "backends/slurm_drmaa/gridmap_slurm_drmaa"]
BACKEND_DIRS = ["backends/local", "backends/sge", "backends/slurm", "backends/slurm_drmaa"]
# lint-imports in a fresh process: the import graph is built from the files of the packages
# that process finds first (those under its working directory), never from modules this
# process already imported.
_LINT_IMPORTS = ("import sys; from importlinter.cli import lint_imports; "
                 "sys.exit(lint_imports(no_cache=True, no_logo=True))")


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter over the packages under ``where`` with the contracts of the
    pyproject.toml there; the backend packages come from this tree's backends/."""
    paths = [str(ROOT / d) for d in BACKEND_DIRS]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [*paths, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-c", _LINT_IMPORTS], cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)


def test_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, (
        "an import crosses a border between the parts (the contracts are [tool.importlinter] "
        "in pyproject.toml, explained in docs/architecture.md): import from a part the "
        "contract allows, or move the code; change a contract only with a comment saying "
        "why\n" + result.stdout + result.stderr)
