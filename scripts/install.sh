#!/usr/bin/env bash
# Installs gridmap editable: the core, every backend package under backends/, and the
# development tools; as root, also installs and starts the single-node Grid Engine and
# Slurm test clusters (scripts/sge/start.sh, scripts/slurm/start.sh), builds the
# slurm-drmaa library (scripts/slurm/drmaa.sh), starts the three-node clusters
# (scripts/multinode/) and installs the headless Chromium the
# status-page tests drive (scripts/browser/install.sh). Then runs the quick-start
# example, and each cluster's example when that cluster is up, to show it works.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(-e ".[dev]")
for backend in backends/*/; do
    if [ -f "$backend/pyproject.toml" ]; then
        packages+=(-e "$backend")
    fi
done
python3 -m pip install --disable-pip-version-check -q "${packages[@]}"
# On this machine's local backend, even where a cluster is already up (the automatic
# choice would take it, and its temp_dir must be shared with the nodes).
GRIDMAP_BACKEND=local python3 examples/quickstart.py

if [ "$(id -u)" -eq 0 ]; then
    bash scripts/sge/start.sh >/dev/null
    bash scripts/slurm/start.sh >/dev/null
    bash scripts/slurm/drmaa.sh >/dev/null
    # Three-node Slurm and Grid Engine clusters in namespaces (scripts/multinode/).
    bash scripts/multinode/start-slurm.sh >/dev/null
    bash scripts/multinode/start-sge.sh >/dev/null
    bash scripts/browser/install.sh
else
    echo "not root: the test clusters and browser are not installed (run scripts/sge/start.sh, scripts/slurm/start.sh and scripts/browser/install.sh as root)" >&2
fi
sge_env=${GRIDMAP_SGE_ENV_FILE:-/etc/gridmap-sge.env}
if [ -r "$sge_env" ]; then
    # A subshell: the example's interpreter must start with the cluster's environment.
    (. "$sge_env" && python3 examples/sge_example.py)
fi
if scontrol ping 2>/dev/null | grep -q " is UP"; then
    python3 examples/slurm_example.py
    slurm_drmaa=${GRIDMAP_SLURM_DRMAA_PREFIX:-/opt/slurm-drmaa}/lib/libdrmaa.so
    if [ -e "$slurm_drmaa" ]; then
        # Its own interpreter: one process loads one libdrmaa, named before it starts.
        DRMAA_LIBRARY_PATH=$slurm_drmaa python3 examples/slurm_drmaa_example.py
    fi
fi
