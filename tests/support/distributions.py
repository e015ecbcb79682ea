"""Installing throwaway plugin distributions for tests, without pip or a network."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def install(project: Path, site: Path) -> str:
    """Lay ``project`` out in ``site`` the way pip would: its packages, and a
    ``.dist-info`` with ``METADATA`` and ``entry_points.txt`` made from its
    pyproject.toml, so ``importlib.metadata`` finds its entry points. Returns its name."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    meta = pyproject["project"]
    for package in pyproject["tool"]["setuptools"]["packages"]:
        for source in (project / package).rglob("*.py"):
            target = site / source.relative_to(project)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source.read_text())
    name = re.sub(r"[-_.]+", "_", meta["name"])
    dist_info = site / f"{name}-{meta['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) + "\n"
            for group, points in meta.get("entry-points", {}).items()
        )
    )
    return str(meta["name"])
