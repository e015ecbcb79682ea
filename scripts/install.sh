#!/usr/bin/env bash
# Installs gridmap editable: the core, every backend package under backends/, and the
# development tools; then runs the quick-start example to show it works.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(-e ".[dev]")
for backend in backends/*/; do
    if [ -f "$backend/pyproject.toml" ]; then
        packages+=(-e "$backend")
    fi
done
python3 -m pip install --disable-pip-version-check -q "${packages[@]}"
python3 examples/quickstart.py
