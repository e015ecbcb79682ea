"""The Grid Engine backend's modules import without loading libdrmaa."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(30)


def test_the_backend_modules_do_not_load_drmaa() -> None:
    # Importing the drmaa package loads libdrmaa, which a machine without Grid Engine
    # lacks; only opening a session may do that.
    code = ("import sys, gridmap_sge.backend, gridmap_sge.scheduler, gridmap_sge.endings, "
            "gridmap_sge.qstat, gridmap_sge.native; "
            "assert 'drmaa' not in sys.modules, 'drmaa imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
