"""What a test needs from the machine (a cluster, a browser): missing, it fails in CI
and is skipped elsewhere."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(what: str, reason: str, remedy: str) -> NoReturn:
    """Fail (in CI, which must provide ``what``) or skip: ``what`` is not usable."""
    message = f"{what} is not usable: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI must {remedy}: scripts/install.sh as root, then "
                    "scripts/test.sh)", pytrace=False)
    pytest.skip(message)


def slurm_drmaa_library() -> str:
    """The slurm-drmaa library the tests load in a Python of their own (one DRMAA library
    per process): ``GRIDMAP_SLURM_DRMAA_LIBRARY``, which scripts/test.sh names when
    scripts/slurm/drmaa.sh built it. Fails in CI, skips elsewhere, when it is missing."""
    library = os.environ.get("GRIDMAP_SLURM_DRMAA_LIBRARY")
    if not library or not os.path.exists(library):
        unavailable("the slurm-drmaa library",
                    f"GRIDMAP_SLURM_DRMAA_LIBRARY={library or '(not set)'} names no library",
                    "build it with scripts/slurm/drmaa.sh, which scripts/test.sh then names")
    return library
