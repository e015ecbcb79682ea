"""The runner's exit statuses and their reading (gridmap_core/wire/exits.py): one module
that the runner and the backends that start runners both import."""

from __future__ import annotations

import json
import subprocess
import sys

from gridmap_core.model.death import DeathKind
from gridmap_core.wire import exits
from gridmap_core.wire.exit_kinds import kind_of_exit, worth_resubmitting
from gridmap_core.wire.exits import EXIT_MAP_ENDED


def test_signals_are_named_and_unnamed_ones_numbered() -> None:
    assert exits.name_of_signal(9) == "SIGKILL"
    assert exits.name_of_signal(200) == "signal 200"
    assert exits.describe_exit(-11) == "killed by SIGSEGV"
    assert exits.describe_exit(-200) == "killed by signal 200"


def test_the_runner_and_the_backends_read_exits_with_the_same_function() -> None:
    from gridmap_local import processes
    from gridmap_sge import endings
    from gridmap_slurm import states

    from gridmap_core.node import runner

    for module in (runner, processes, endings, states):
        assert module.describe_exit is exits.describe_exit, module.__name__
    assert runner.EXIT_JOB_DIED == exits.EXIT_JOB_DIED


def test_importing_it_costs_the_runner_nothing_more() -> None:
    # The runner imports this at every job's start: nothing of the node, the map, the
    # plugin manager or a third-party package may come with it.
    code = ("import json, sys; import gridmap_core.wire.exits; "
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    loaded = set(json.loads(done.stdout))
    ours = {name for name in loaded if name.startswith("gridmap")}
    assert ours == {"gridmap_core", "gridmap_core.wire", "gridmap_core.wire.exits"}, ours
    assert not loaded & {"pluggy", "psutil", "zmq", "cloudpickle"}


def test_a_runner_that_gave_up_on_a_gone_monitor_lost_it_and_may_run_again() -> None:
    assert kind_of_exit(EXIT_MAP_ENDED) is DeathKind.MONITOR_LOST
    assert worth_resubmitting(EXIT_MAP_ENDED)
