"""Fixtures for end-to-end scenarios on a real testkit cluster (root, namespaces)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from corral.testkit.cluster import Testkit


def init_argv(*extra: str, templates: str = "drbd,file,diskless") -> list[str]:
    """The ``gnt-cluster init`` of every e2e cluster (fake hypervisor, the
    testkit's br-man and br-public bridges), plus `extra` options."""
    return [
        "gnt-cluster",
        "init",
        "--master-netdev=br-man",
        "--enabled-hypervisors=fake",
        "-N",
        "link=br-public",
        f"--enabled-disk-templates={templates}",
        *extra,
        "cluster.project.edu",
    ]


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testkit]:
    if os.geteuid() != 0:
        pytest.skip("the testkit needs root (namespaces, loop devices)")
    directory = tmp_path_factory.mktemp("kit")
    testkit = Testkit(directory)
    testkit.up(nodes=3)
    try:
        yield testkit
    finally:
        testkit.down()
