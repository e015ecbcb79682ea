"""What of the submitting environment a Grid Engine job gets (gridmap_sge.scheduler)."""

from __future__ import annotations

import pytest
from gridmap_sge.scheduler import job_environment

pytestmark = pytest.mark.timeout(30)


def test_job_environment_drops_what_grid_engine_sets_per_job() -> None:
    outer = {
        "JOB_ID": "77", "JOB_NAME": "outer", "SGE_TASK_ID": "3", "SGE_TASK_FIRST": "1",
        "NSLOTS": "4", "TMPDIR": "/tmp/77.1.all.q", "TMP": "/tmp/77.1.all.q",
        "HOSTNAME": "node1", "SGE_O_HOME": "/home/alice", "SGE_O_WORKDIR": "/home/alice",
        "PE_HOSTFILE": "/var/spool/pe_hostfile", "QUEUE": "all.q",
        "SGE_STDOUT_PATH": "/home/alice/out", "SGE_JOB_SPOOL_DIR": "/var/spool/77",
        "PATH": "/usr/bin:/bin", "MY_SETTING": "on", "SGE_ROOT": "/var/lib/gridengine",
        "SGE_CELL": "default",
    }
    assert job_environment(outer) == {
        "PATH": "/usr/bin:/bin", "MY_SETTING": "on", "SGE_ROOT": "/var/lib/gridengine",
        "SGE_CELL": "default",
    }
