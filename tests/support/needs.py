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
