#!/usr/bin/env bash
# Runs the test suite with the client environment of the test clusters that
# scripts/install.sh started (when it did): Python must start with it, because
# libdrmaa cannot be loaded without GLIBC_TUNABLES on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
for env_file in "${GRIDMAP_SGE_ENV_FILE:-/etc/gridmap-sge.env}"; do
    if [ -r "$env_file" ]; then
        # shellcheck source=/dev/null
        . "$env_file"
    fi
done
exec python3 -m pytest "$@"
