"""filedrbd TEST backend specifics: rediscovery, authentication, dual-primary handover."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral import errors
from corral.paths import Paths
from corral.storage import DeviceContext, build_device
from corral.storage.drbd_filesync import FileDRBD
from tests.storage.conformance import FileDrbdHarness, content, wait_for


@pytest.fixture
def harness(tmp_path: Path) -> FileDrbdHarness:
    h = FileDrbdHarness(tmp_path)
    yield h  # type: ignore[misc]
    h.cleanup()


def _pair(h: FileDrbdHarness) -> tuple[FileDRBD, FileDRBD]:
    a, b = h.make(size=8)
    assert isinstance(a, FileDRBD) and isinstance(b, FileDRBD)
    b.create()
    a.create()
    b.assemble()
    a.assemble()
    return a, b


def _synced(a: FileDRBD, b: FileDRBD) -> bool:
    return not a.get_sync_status().is_degraded and not b.get_sync_status().is_degraded


def test_not_assembled_status(harness: FileDrbdHarness) -> None:
    a, _ = harness.make()
    st = a.get_sync_status()
    assert st.dev_path is None and st.is_degraded
    assert a.describe()["cstate"] == "Unconfigured"
    with pytest.raises(errors.BlockDeviceError, match="not assembled"):
        a.open()


def test_agent_survives_a_new_device_object(harness: FileDrbdHarness, tmp_path: Path) -> None:
    """A restarted noded rebuilds devices from config and finds the running agents."""
    a, b = _pair(harness)
    a.open(force=True)
    wait_for(lambda: _synced(a, b), what="sync")
    pid = a.agent_pid()
    ctx = DeviceContext(node_uuid="nA", node_ips=dict(harness.node_ips))
    again = build_device(a.disk.copy(), ctx, Paths.under(tmp_path / "node1"))
    assert isinstance(again, FileDRBD)
    assert again.agent_pid() == pid
    assert again.assemble() == a.dev_path()
    assert again.agent_pid() == pid  # no second agent
    assert again.describe()["role"] == "Primary"
    assert not again.get_sync_status().is_degraded


def test_wrong_secret_never_connects(harness: FileDrbdHarness) -> None:
    a, b = harness.make()
    b.disk.logical_id[5] = "0" * 40  # the secondary knows another secret
    b.create()
    a.create()
    b.assemble()
    a.assemble()
    a.open(force=True)
    wait_for(
        lambda: "authentication failed" in Path(a.files["log"]).read_text(), what="auth failure"
    )
    assert a.get_sync_status().is_degraded and b.get_sync_status().is_degraded
    assert a.describe()["cstate"] == "WFConnection"


def test_open_inconsistent_needs_force(harness: FileDrbdHarness) -> None:
    a, _ = _pair(harness)
    with pytest.raises(errors.BlockDeviceError, match="UpToDate"):
        a.open()
    a.open(force=True)
    assert a.describe()["role"] == "Primary"


def test_dual_primary_handover(harness: FileDrbdHarness) -> None:
    """Live migration: both primary, the source closes, the target becomes sync source."""
    a, b = _pair(harness)
    a.open(force=True)
    wait_for(lambda: _synced(a, b), what="initial sync")
    for dev in (a, b):
        dev.disconnect_net()
    for dev in (a, b):
        dev.attach_net(True)
    wait_for(lambda: _synced(a, b), what="reconnect")
    b.open()  # allowed: dual-primary
    assert b.describe()["role"] == "Primary"
    with open(a.dev_path(), "r+b") as f:  # last write of the VM on the source
        f.write(b"from A before switch-over")
    a.close()  # flushes to B first
    assert content(b.dev_path()).startswith(b"from A before switch-over")
    with open(b.dev_path(), "r+b") as f:
        f.seek(4096)
        f.write(b"from B after switch-over")
    wait_for(lambda: content(a.dev_path()) == content(b.dev_path()), what="B -> A replication")
    assert a.describe()["role"] == "Secondary" and b.describe()["peer_role"] == "Secondary"


def test_remove_cleans_up(harness: FileDrbdHarness) -> None:
    a, b = _pair(harness)
    files = a.files
    a.remove()
    b.remove()
    assert a.agent_pid() is None
    for key in ("want", "status", "pid"):
        assert not os.path.exists(files[key])
    assert not a.children[0].exists() and not a.children[1].exists()


def test_dual_primary_local_writes_win(harness: FileDrbdHarness) -> None:
    """A late update from the migration source never overwrites the target VM's writes."""
    a, b = _pair(harness)
    a.open(force=True)
    wait_for(lambda: _synced(a, b), what="initial sync")
    for dev in (a, b):
        dev.disconnect_net()
    for dev in (a, b):
        dev.attach_net(True)
    wait_for(lambda: _synced(a, b), what="reconnect")
    b.open()
    mib = 1024 * 1024
    with open(b.dev_path(), "r+b") as f:
        f.seek(2 * mib)
        f.write(b"written by the VM on B")
    with open(a.dev_path(), "r+b") as f:
        f.seek(2 * mib + 100)
        f.write(b"late write from A")
        f.seek(4 * mib)
        f.write(b"marker")
    wait_for(lambda: content(b.dev_path())[4 * mib : 4 * mib + 6] == b"marker", what="update")
    data = content(b.dev_path())
    assert data[2 * mib : 2 * mib + 22] == b"written by the VM on B"
    assert b"late write from A" not in data
