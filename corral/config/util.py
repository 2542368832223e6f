"""Small helpers over config objects shared by the store and its checks."""

from __future__ import annotations

from collections.abc import Iterator

from corral import objects


def iter_disks(disks: list[objects.Disk]) -> Iterator[objects.Disk]:
    """Every disk of a tree, parents before children."""
    for disk in disks:
        yield disk
        yield from iter_disks(disk.children)
