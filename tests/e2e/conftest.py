"""Fixtures for end-to-end scenarios on a real testkit cluster (root, namespaces)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from corral.testkit.cluster import Testkit


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(kit: Testkit, *argv: str, node: str = "node1", timeout: float = 120) -> Result:
    """`argv` on `node`; whatever it exits with, it printed no traceback."""
    proc = kit.exec(node, list(argv), check=False, timeout=timeout)
    res = Result(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in res.output, f"{argv}:\n{res.output}"
    return res


def ok(kit: Testkit, *argv: str, node: str = "node1", timeout: float = 120) -> str:
    """`argv` on `node` must succeed; its standard output."""
    res = run(kit, *argv, node=node, timeout=timeout)
    assert res.code == 0, f"{argv}: rc={res.code}\n{res.output}"
    return res.stdout


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
