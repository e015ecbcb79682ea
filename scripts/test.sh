#!/usr/bin/env bash
# Runs the test suite with the client environment of the test clusters that
# scripts/install.sh started (when it did): Python must start with it, because
# libdrmaa cannot be loaded without GLIBC_TUNABLES on Debian 12. The slurm-drmaa
# library that scripts/slurm/drmaa.sh built is named by GRIDMAP_SLURM_DRMAA_LIBRARY
# (its tests load it in a Python of their own: one process holds one libdrmaa). The
# tests of the three-node clusters read /etc/gridmap-mn-slurm.env and
# /etc/gridmap-mn-sge.env themselves, and run each backend's conformance suite there in a
# Python started with that cluster's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
for env_file in "${GRIDMAP_SGE_ENV_FILE:-/etc/gridmap-sge.env}"; do
    if [ -r "$env_file" ]; then
        # shellcheck source=/dev/null
        . "$env_file"
    fi
done
slurm_drmaa=${GRIDMAP_SLURM_DRMAA_PREFIX:-/opt/slurm-drmaa}/lib/libdrmaa.so
if [ -z "${GRIDMAP_SLURM_DRMAA_LIBRARY:-}" ] && [ -e "$slurm_drmaa" ]; then
    export GRIDMAP_SLURM_DRMAA_LIBRARY=$slurm_drmaa
fi
exec python3 -m pytest "$@"
