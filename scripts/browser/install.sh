#!/usr/bin/env bash
# Installs Debian's headless Chromium and its ChromeDriver (/usr/bin/chromium,
# /usr/bin/chromedriver) for the browser tests (tests/support/browser.py), when either is
# missing. Idempotent: with both present it does nothing. Debian's packages, because a
# browser or driver that a test tool downloads for itself cannot be fetched here (only
# package registries are reachable).
#
# Not root: prints the command to run and exits 0, so a developer's install goes on;
# the browser tests then skip (or fail in CI) saying what is missing.
#
# Environment (optional):
#   GRIDMAP_BROWSER_APT_TIMEOUT=SECONDS  how long to wait for a busy apt/dpkg (default 300)
set -euo pipefail

APT_TIMEOUT=${GRIDMAP_BROWSER_APT_TIMEOUT:-300}
PACKAGES=(chromium chromium-driver)

log() { printf 'browser/install: %s\n' "$*" >&2; }
die() { printf 'browser/install: ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
if [[ $EUID -ne 0 ]]; then
  log "not root: Chromium is not installed; run as root:"
  log "  DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${PACKAGES[*]}"
  exit 0
fi
[[ $APT_TIMEOUT =~ ^[0-9]+$ ]] || die "GRIDMAP_BROWSER_APT_TIMEOUT must be a number of seconds"

# apt_get: apt-get, retried while another apt holds its locks, bounded by APT_TIMEOUT.
# shellcheck source=scripts/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../apt.sh"

t=$SECONDS
log "installing ${PACKAGES[*]} (apt-get update + install)"
# The package lists of a fresh machine may be empty or stale: without the update the
# install cannot find the packages, or asks for versions the mirror no longer has.
apt_get update || die "apt-get update failed"
# --no-install-recommends: the recommends (fonts, desktop integration) are not needed
# headless and only slow the install down.
apt_get install -y --no-install-recommends "${PACKAGES[@]}" || die "apt-get install ${PACKAGES[*]} failed"
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] ||
  die "installed ${PACKAGES[*]}, but /usr/bin/chromium or /usr/bin/chromedriver is still missing"
log "installed in $((SECONDS - t)) s: $(/usr/bin/chromium --version 2>/dev/null || true)"
