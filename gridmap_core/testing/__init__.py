"""The backend conformance suite: what every backend must do, on its real scheduler.

Subclass :class:`BackendConformance` in a pytest module and name the backend::

    from gridmap_core.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = "mine"
        settings = {"DEFAULT_TEMP_DIR": "/shared/tmp"}

        def assert_ran_on_backend(self, where):
            assert "MY_SCHEDULER_JOB_ID" in where["environment"]

Every test runs real jobs through :class:`~gridmap_core.face.executor.GridMapExecutor`,
with ``require_cluster`` as the backend's :class:`~gridmap_core.plugins.types.BackendSpec`
says (``is_cluster``): a cluster backend that cannot run here fails instead of falling
back to the local one, and a backend that runs jobs on this machine is tested as it is.
Jobs write their marker files in ``shared_dir``, which must be visible to the nodes.
Override :meth:`kill` when the jobs do not run on this host, and :meth:`process_ended`
so that the cancelling test checks their processes end there. Add tests for what only
your scheduler can check (slots, memory and runtime limits as it granted them) in
the subclass. A test of a contract the backend cannot keep by its nature (a thread
cannot be killed alone) is turned off by setting it to None in the subclass, with a
comment saying why.

The suite is :mod:`gridmap_core.testing.conformance`, the jobs it runs
:mod:`gridmap_core.testing.jobs` (at module level, so every node can import them), and
:class:`EventRecorder`, a plugin that records what observers hear,
:mod:`gridmap_core.testing.recorder`.
"""

from gridmap_core.testing.conformance import BackendConformance
from gridmap_core.testing.recorder import EventRecorder

__all__ = ["BackendConformance", "EventRecorder"]
