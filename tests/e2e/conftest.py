"""Fixtures for end-to-end scenarios on a real testkit cluster (root, namespaces)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from corral.testkit.cluster import Testkit


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
