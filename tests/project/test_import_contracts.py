"""The import contracts catch what they forbid: each case adds one import to a copy of the
core and checks that lint-imports, with the project's own contracts, fails naming the
contract it breaks and the import. The real tree is never touched."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.project.test_quality import ROOT, lint_imports

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONTRACTS = {contract["id"]: contract["name"] for contract in tomllib.loads(
    (ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]}


def copy_of_tree(tmp_path: Path) -> Path:
    """The core, the legacy package and pyproject.toml, copied under ``tmp_path``."""
    for package in ("gridmap_core", "gridmap"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_line(tree: Path, module: str, line: str) -> None:
    """Append ``line`` to the file of ``module`` (a dotted name) in ``tree``; a module that
    does not exist yet is created, as a new package."""
    path = tree.joinpath(*module.split("."))
    if path.is_dir() or not path.with_suffix(".py").exists():
        path.mkdir(exist_ok=True)
        path = path / "__init__.py"
        path.touch()
    else:
        path = path.with_suffix(".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_copy_keeps_every_contract(tmp_path: Path) -> None:
    # Without it, the failures below could come from copying rather than from the import.
    result = lint_imports(copy_of_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "line", "contract", "shown"), [
    ("gridmap_core.face.api", "import gridmap_sge", "face-map-no-backends",
     "gridmap_core.face.api -> gridmap_sge"),
    ("gridmap_core.map.monitor", "from gridmap_local import backend", "face-map-no-backends",
     "gridmap_core.map.monitor -> gridmap_local.backend"),
    ("gridmap_core.node.runner", "import gridmap_slurm", "node-no-backends",
     "gridmap_core.node.runner -> gridmap_slurm"),
    ("gridmap_core.model.resources", "from gridmap_core.face import api", "model-not-map-face",
     "gridmap_core.model.resources -> gridmap_core.face.api"),
    ("gridmap_core.errors", "import gridmap_core.model.job", "parts-layers",
     "gridmap_core.errors -> gridmap_core.model.job"),
    ("gridmap_core.map.runs", "import gridmap_core.node.usage", "parts-layers",
     "gridmap_core.map.runs -> gridmap_core.node.usage"),
    ("gridmap_core.elsewhere", "", "parts-layers", "gridmap_core.elsewhere"),
    ("gridmap_core.doctor.verdicts", "import gridmap_core.doctor.checks", "parts-acyclic",
     ".verdicts -> .checks"),
], ids=["face-imports-sge", "map-imports-local", "node-imports-slurm", "model-imports-face",
        "errors-imports-model", "map-imports-node", "part-not-placed", "doctor-cycle"])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str,
                                                contract: str, shown: str) -> None:
    tree = copy_of_tree(tmp_path)
    add_line(tree, module, line)
    result = lint_imports(tree)
    output = " ".join(result.stdout.split())  # long lines are wrapped at the terminal width
    assert result.returncode != 0, output
    _, _, broken = output.partition("Broken contracts")
    assert CONTRACTS[contract] in broken, output
    assert shown in broken, output
    real = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert not real.exists() or line not in real.read_text()
