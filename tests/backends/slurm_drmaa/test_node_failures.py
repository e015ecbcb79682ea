"""A slurm-drmaa resubmission avoids the nodes that failed as the sbatch backend's does,
in options slurm-drmaa reads (--exclude, --nodelist), without a cluster."""

from __future__ import annotations

import pytest
from gridmap_slurm.options import SlurmOptions
from gridmap_slurm_drmaa.native import native_specification

from tests.backends.slurm.fakes import make_spec

pytestmark = pytest.mark.timeout(30)

NODES = SlurmOptions(nodes=("mn-slurm1", "mn-slurm2", "mn-slurm3"))


def test_a_failed_node_is_excluded() -> None:
    assert native_specification(make_spec(), NODES, ["mn-slurm2"]) == "--exclude=mn-slurm2"
    assert native_specification(make_spec(white_list=["mn-slurm1", "mn-slurm2"]), NODES,
                                ["mn-slurm2"]) == "--nodelist=mn-slurm1"


def test_a_site_that_names_the_nodes_keeps_its_own_choice() -> None:
    site = SlurmOptions(nodes=NODES.nodes, extra=("--exclude=mn-slurm3",))
    assert native_specification(make_spec(), site, ["mn-slurm2"]) == "--exclude=mn-slurm3"
