"""Reading the Slurm cluster, and the backend's checks of jobs, tools and controller."""

from __future__ import annotations

from pathlib import Path

import pytest
from gridmap_slurm.backend import SlurmBackend, check_partitions, controller_problem, slurm_options
from gridmap_slurm.cluster import Cluster, read_cluster
from gridmap_slurm.options import SlurmOptions

from gridmap_core.model.resources import ResourceError
from tests.backends.slurm.fakes import FakeSlurm, fake_tools, make_spec

pytestmark = pytest.mark.timeout(30)

SCONTROL_CONFIG = """\
Configuration data as of 2024-05-01T10:00:00
AccountingStorageType   = accounting_storage/slurmdbd
ClusterName             = cluster
JobCompLoc              = {log}
JobCompType             = jobcomp/filetxt
MaxArraySize            = 5000
"""


def test_read_cluster(tmp_path: Path) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text("")
    slurm = FakeSlurm()
    slurm.replies = {
        "scontrol": [(0, SCONTROL_CONFIG.format(log=log), "")],
        "sinfo": [(0, "vm\nvm\nnode2\n", ""), (0, "debug\nlong\ndebug\n", "")],
    }
    cluster = read_cluster(slurm)
    assert cluster == Cluster(max_array_size=5000, accounting=True, jobcomp_log=str(log),
                              nodes=("vm", "node2"), partitions=("debug", "long"))
    assert slurm.calls == [["scontrol", "show", "config"], ["sinfo", "-h", "-N", "-o", "%N"],
                           ["sinfo", "-h", "-o", "%R"]]


def test_read_cluster_without_sinfo_or_a_readable_log(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    config = SCONTROL_CONFIG.format(log=tmp_path / "missing.log").replace(
        "accounting_storage/slurmdbd", "accounting_storage/none").replace("5000", "many")
    slurm.replies = {"scontrol": [(0, config, "")],
                     "sinfo": [(1, "", "sinfo: error: Invalid user")]}
    assert read_cluster(slurm) == Cluster(max_array_size=1001, accounting=False,
                                          jobcomp_log=None, nodes=None, partitions=None)


def test_slurm_options_from_the_backend_settings() -> None:
    cluster = Cluster(nodes=("n1", "n2"), partitions=("debug",))
    settings = {"gpu_resource": "tesla", "sbatch_options": "--qos=high --mail-type=NONE"}
    assert slurm_options(settings, cluster) == SlurmOptions(
        gpu_resource="tesla", extra=("--qos=high", "--mail-type=NONE"), nodes=("n1", "n2"),
        partitions=("debug",))
    assert slurm_options({}) == SlurmOptions()
    assert slurm_options({"native": "-C avx2"}, extra_key="native").extra == ("-C", "avx2")


def test_an_unknown_partition_is_refused_naming_the_known_ones() -> None:
    cluster = Cluster(partitions=("debug", "long"))
    with pytest.raises(ResourceError, match=r"queue='gpu': Slurm has no partition 'gpu'; its "
                                            r"partitions are: debug, long \(sinfo -s\)"):
        check_partitions(make_spec(queue="gpu"), cluster)
    with pytest.raises(ResourceError, match=r"no partition 'x'; its"):
        check_partitions(make_spec(queue="debug,x"), cluster)


def test_known_partitions_pass() -> None:
    cluster = Cluster(partitions=("debug", "long"))
    check_partitions(make_spec(queue="debug,long"), cluster)
    check_partitions(make_spec(), cluster)
    check_partitions(make_spec(queue="all.q"), cluster)  # the default partition
    check_partitions(make_spec(queue="gpu"), Cluster(partitions=None))  # not known


def test_the_backend_checks_a_job_against_its_cluster() -> None:
    backend = SlurmBackend()
    backend._cluster = Cluster(nodes=("n1", "n2"), partitions=("debug",))
    backend.check(make_spec(queue="debug", white_list=["n1", "n2"]))
    with pytest.raises(ResourceError, match=r"no partition 'gpu'"):
        backend.check(make_spec(queue="gpu"))
    with pytest.raises(ResourceError, match=r"does not know: n9"):
        backend.check(make_spec(white_list=["n1", "n9"]))


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert controller_problem() == (
        "sbatch, squeue, scancel, scontrol, sinfo are not on PATH: install Slurm's client "
        "tools (Debian: slurm-client) or load your site's Slurm module")
    fake_tools(tmp_path, ["squeue", "scancel", "scontrol", "sinfo"])
    problem = controller_problem()
    assert problem is not None
    assert problem.startswith("sbatch is not on PATH: ") and "slurm-client" in problem


def test_a_missing_slurm_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tools(tmp_path / "bin", ["sbatch", "squeue", "scancel", "scontrol", "sinfo"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    assert controller_problem() == (f"SLURM_CONF={tmp_path / 'slurm.conf'} does not exist: "
                                    "point it at slurm.conf, or unset it")


@pytest.mark.parametrize(("ping", "expected"), [
    ("echo 'Slurmctld(primary) at vm is UP'", None),
    ("echo 'Slurmctld(primary) at vm is DOWN'",
     "slurmctld does not answer (scontrol ping: Slurmctld(primary) at vm is DOWN): start "
     "Slurm or check slurm.conf"),
    ("exit 1", "slurmctld does not answer (scontrol ping: no output): start Slurm or check "
               "slurm.conf"),
])
def test_the_controller_is_pinged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  ping: str, expected: str | None) -> None:
    fake_tools(tmp_path / "bin", ["sbatch", "squeue", "scancel", "scontrol", "sinfo"],
               scontrol=ping)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("SLURM_CONF", raising=False)
    assert controller_problem() == expected


def test_available_means_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    availability = SlurmBackend().availability()
    assert availability.usable is False and "slurm-client" in availability.reason
