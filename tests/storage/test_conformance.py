"""Bind the conformance suite to every storage driver (see conformance.py)."""

from __future__ import annotations

from tests.storage.conformance import (
    ConformanceSuite,
    FileDrbdHarness,
    FileHarness,
    FileLvHarness,
    KernelDrbdHarness,
    LvmHarness,
    MirroredConformanceSuite,
    SharedFileHarness,
)


class TestFile(ConformanceSuite):
    harness_cls = FileHarness


class TestSharedFile(ConformanceSuite):
    harness_cls = SharedFileHarness


class TestFileLv(ConformanceSuite):
    harness_cls = FileLvHarness


class TestLvm(ConformanceSuite):
    harness_cls = LvmHarness


class TestFileDrbd(MirroredConformanceSuite):
    harness_cls = FileDrbdHarness


class TestKernelDrbd(MirroredConformanceSuite):
    harness_cls = KernelDrbdHarness
