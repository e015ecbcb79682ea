"""Helpers the benchmark scripts share: the original GridMap's virtual environment,
subprocesses, and the report's ratios and tables."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["Unavailable", "ensure_venv", "fmt_ratio", "load_env_file", "ratio", "run_quiet",
           "table", "tail", "venv_python"]


class Unavailable(RuntimeError):
    """A contender cannot be installed or run here; its column is skipped."""


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def load_env_file(path: Path | None) -> dict[str, str]:
    """``export NAME=VALUE`` lines of a cluster's client environment file."""
    if path is None or not path.is_file():
        return {}
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match and not line.lstrip().startswith("#"):
            words = shlex.split(match.group(2))
            found[match.group(1)] = words[0] if words else ""
    return found


def run_quiet(command: Sequence[str | os.PathLike[str]], timeout: float, cwd: str,
              env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], cwd=cwd, env=dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def ensure_venv(venv: Path, requirements: Sequence[str],
                ready: Callable[[Path, str], bool], log: Callable[[str], None],
                env: Mapping[str, str]) -> Path:
    """The interpreter of ``venv``, after installing ``requirements`` there unless
    ``ready(python, cwd)`` already holds; built once, reused by later runs."""
    python = venv_python(venv)
    wanted = " ".join(requirements)
    # A scratch working directory, so the checkout is not importable from it.
    with tempfile.TemporaryDirectory() as cwd:
        if python.exists() and ready(python, cwd):
            return python
        log(f"installing {wanted} into {venv} (once; later runs reuse it)")
        try:
            if not python.exists():
                made = run_quiet([sys.executable, "-m", "venv", venv], 300, cwd, env)
                if made.returncode != 0:
                    raise Unavailable(
                        f"python -m venv {venv} failed:\n{tail(made.stderr or made.stdout)}")
            pip = run_quiet([python, "-m", "pip", "install", "--disable-pip-version-check",
                             "--no-input", *requirements], 900, cwd, env)
            if pip.returncode != 0:
                raise Unavailable(f"pip install {wanted} failed:\n"
                                  f"{tail(pip.stderr or pip.stdout)}")
        except (OSError, subprocess.TimeoutExpired) as error:
            raise Unavailable(f"cannot build {venv}: {error}") from error
        if not ready(python, cwd):
            raise Unavailable(f"{venv} still lacks {wanted} after pip install")
    return python


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A plain-text table; ``align`` has one letter per column, l or r (default r)."""
    align = align or "r" * len(header)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [" | ".join(cell.ljust(w) if a == "l" else cell.rjust(w)
                        for cell, w, a in zip(line, widths, align, strict=True)).rstrip()
             for line in (header, *rows)]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
