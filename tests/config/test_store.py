"""ConfigStore: lookups, mutations with serials, atomic persistence, reservations."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import msgspec
import pytest

from corral import constants as C
from corral import errors, objects
from corral.config import FileConfigStore, load_config_file, save_config_file
from corral.config.names import match_name_component
from tests.jobs.fakes import make_instance, sample_config


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def store(tmp_path: Any) -> FileConfigStore:
    return FileConfigStore.create(str(tmp_path / "config.data"), sample_config())


def reload(store: FileConfigStore) -> objects.ConfigData:
    return load_config_file(store.path)


# --- round trips -----------------------------------------------------------------


def test_every_object_round_trips_through_the_store_and_disk(store: FileConfigStore) -> None:
    async def scenario() -> None:
        await store.add_group(objects.NodeGroup(name="rack2", ndparams={"spindle_count": 2}))
        gid = store.lookup_group("rack2")
        await store.add_node(
            objects.Node(
                name="node9.example.com",
                primary_ip="192.0.2.9",
                group=gid,
                tags=["a"],
                ndparams={"ssh_port": 2222},
            )
        )
        await store.add_network(
            objects.Network(name="pub", network="203.0.113.0/24", mac_prefix="aa:bb:cc")
        )
        inst = make_instance(
            "inst1.example.com",
            "i1",
            "n1",
            "n2",
            nics=[objects.NIC(mac="aa:00:00:00:00:01", nicparams={"link": "br0"})],
            beparams={"maxmem": 512},
            hvparams={"kernel_args": "ro"},
            osparams={"x": "y"},
            tags=["web"],
            network_port=11001,
        )
        await store.add_instance(inst)
        store.cluster.tags.append("prod")
        await store.update_cluster(store.cluster)

    run(scenario())
    on_disk = reload(store)
    assert on_disk == store.data
    # msgspec equality is structural: check a few fields explicitly anyway
    inst = on_disk.instances["i1"]
    assert inst.disks[0].children[1].logical_id == ["xenvg", "i1.disk0_meta"]
    assert inst.nics[0].nicparams == {"link": "br0"}
    assert inst.secondary_nodes == ["n2"]
    assert on_disk.cluster.tags == ["prod"]
    node9 = next(n for n in on_disk.nodes.values() if n.name == "node9.example.com")
    assert node9.ndparams == {"ssh_port": 2222}
    assert next(iter(on_disk.networks.values())).mac_prefix == "aa:bb:cc"
    # the file is Ganeti-shaped JSON
    with open(store.path) as handle:
        raw = json.load(handle)
    assert {"version", "cluster", "nodes", "nodegroups", "instances", "serial_no"} <= set(raw)


def test_load_rejects_other_versions_and_garbage(tmp_path: Any) -> None:
    path = str(tmp_path / "config.data")
    data = sample_config()
    data.version = 2160000
    save_config_file(path, data)
    with pytest.raises(errors.ConfigVersionMismatch):
        FileConfigStore.load(path)
    with open(path, "w") as handle:
        handle.write("{not json")
    with pytest.raises(errors.ConfigurationError, match="Cannot parse"):
        FileConfigStore.load(path)
    with pytest.raises(errors.ConfigurationError, match="not found"):
        FileConfigStore.load(str(tmp_path / "missing"))


def test_write_is_atomic_and_leaves_no_temp_files(store: FileConfigStore, tmp_path: Any) -> None:
    run(store.add_instance(make_instance("a.example.com", "ia")))
    assert sorted(os.listdir(tmp_path)) == ["config.data"]
    assert oct(os.stat(store.path).st_mode & 0o777) == "0o600"


# --- lookups ------------------------------------------------------------------------


def test_match_name_component() -> None:
    names = ["inst1.example.com", "inst10.example.com", "web.a.com", "web.b.com"]
    assert match_name_component("inst1", names) == "inst1.example.com"
    assert match_name_component("inst1.example.com", names) == "inst1.example.com"
    assert match_name_component("inst", names) is None  # not a component
    assert match_name_component("web", names) is None  # ambiguous
    assert match_name_component("INST10", names) == "inst10.example.com"


def test_expand_names(store: FileConfigStore) -> None:
    run(store.add_instance(make_instance("inst1.example.com", "i1")))
    assert store.expand_instance_name("inst1") == ("i1", "inst1.example.com")
    assert store.expand_instance_name("i1") == ("i1", "inst1.example.com")
    assert store.expand_node_name("node2") == ("n2", "node2.example.com")
    with pytest.raises(errors.OpPrereqError) as info:
        store.expand_instance_name("doesnotexist")
    assert str(info.value) == "Instance 'doesnotexist' not known"
    assert info.value.ecode == errors.ECODE_NOENT
    with pytest.raises(errors.OpPrereqError, match="Node 'node' not known"):
        store.expand_node_name("node")


def test_lookup_group_and_node_relations(store: FileConfigStore) -> None:
    assert store.lookup_group(None) == "g-default"
    assert store.lookup_group("default") == "g-default"
    with pytest.raises(errors.OpPrereqError, match="Node group 'x' not found"):
        store.lookup_group("x")
    run(store.add_instance(make_instance("a.example.com", "ia", "n1", "n2")))
    assert store.node_instances("n1") == (["ia"], [])
    assert store.node_instances("n2") == ([], ["ia"])
    assert store.master_node().name == "node1.example.com"


# --- mutations ------------------------------------------------------------------------


def test_mutations_bump_serials_and_mtime(store: FileConfigStore) -> None:
    run(store.add_instance(make_instance("a.example.com", "ia")))
    inst = store.get_instance("ia")
    assert inst is not None and inst.serial_no == 1 and inst.ctime > 0
    config_serial = store.serial_no
    old_mtime = inst.mtime
    inst.beparams["vcpus"] = 2
    run(store.update_instance(inst))
    assert inst.serial_no == 2
    assert inst.mtime >= old_mtime
    assert store.serial_no == config_serial + 1
    assert reload(store).instances["ia"].beparams == {"vcpus": 2}
    assert reload(store).serial_no == store.serial_no


def test_update_of_stale_copy_is_refused(store: FileConfigStore) -> None:
    run(store.add_instance(make_instance("a.example.com", "ia")))
    copy1 = store.instances["ia"].copy()
    copy2 = store.instances["ia"].copy()
    copy1.os = "debian"
    run(store.update_instance(copy1))
    assert store.instances["ia"].os == "debian"
    copy2.os = "other"
    with pytest.raises(errors.ConfigurationError, match="updated since"):
        run(store.update_instance(copy2))
    assert store.instances["ia"].os == "debian"


def test_add_duplicates_are_refused(store: FileConfigStore) -> None:
    run(store.add_instance(make_instance("a.example.com", "ia")))
    with pytest.raises(errors.OpPrereqError, match="already in the cluster") as info:
        run(store.add_instance(make_instance("a.example.com", "ib")))
    assert info.value.ecode == errors.ECODE_EXISTS
    with pytest.raises(errors.OpPrereqError, match="already in the cluster"):
        run(store.add_node(objects.Node(name="node1.example.com", group="g-default")))
    with pytest.raises(errors.ConfigurationError, match="unknown node"):
        run(store.add_instance(make_instance("b.example.com", "ib", pnode="nx")))


def test_admin_state_rename_remove(store: FileConfigStore) -> None:
    run(store.add_instance(make_instance("a.example.com", "ia")))
    run(store.set_instance_admin_state("ia", C.ADMINST_UP))
    run(store.set_disks_active("ia", True))
    run(store.rename_instance("ia", "b.example.com"))
    on_disk = reload(store).instances["ia"]
    assert (on_disk.admin_state, on_disk.disks_active, on_disk.name) == (
        C.ADMINST_UP,
        True,
        "b.example.com",
    )
    run(store.remove_instance("ia"))
    assert "ia" not in reload(store).instances
    with pytest.raises(errors.ConfigurationError):
        run(store.remove_instance("ia"))


def test_group_with_nodes_cannot_be_removed(store: FileConfigStore) -> None:
    with pytest.raises(errors.OpPrereqError, match="not empty"):
        run(store.remove_group("g-default"))


def test_listener_sees_every_write(store: FileConfigStore) -> None:
    seen: list[int] = []
    store.add_listener(lambda data: seen.append(data.serial_no))
    run(store.add_instance(make_instance("a.example.com", "ia")))
    run(store.set_instance_admin_state("ia", C.ADMINST_UP))
    assert seen == [store.serial_no - 1, store.serial_no]


# --- reservations -----------------------------------------------------------------------


def test_generated_macs_are_unique_and_use_the_prefix(store: FileConfigStore) -> None:
    macs = {store.generate_mac(job_id=1) for _ in range(200)}
    assert len(macs) == 200
    assert all(m.startswith("aa:00:00:") and len(m) == 17 for m in macs)
    mac = store.generate_mac(job_id=2)
    with pytest.raises(errors.OpPrereqError, match="already in use") as info:
        store.reserve_mac(mac, job_id=3)
    assert info.value.ecode == errors.ECODE_NOTUNIQUE
    store.release_reservations(2)
    store.reserve_mac(mac, job_id=3)  # free again


def test_mac_in_config_is_taken(store: FileConfigStore) -> None:
    inst = make_instance("a.example.com", "ia", nics=[objects.NIC(mac="aa:00:00:11:22:33")])
    run(store.add_instance(inst))
    with pytest.raises(errors.OpPrereqError):
        store.reserve_mac("AA:00:00:11:22:33", job_id=1)
    with pytest.raises(errors.OpPrereqError, match="MAC address"):
        run(
            store.add_instance(
                make_instance("b.example.com", "ib", nics=[objects.NIC(mac="aa:00:00:11:22:33")])
            )
        )


def test_network_mac_prefix(store: FileConfigStore) -> None:
    run(store.add_network(objects.Network(name="pub", mac_prefix="aa:bb:cc")))
    assert store.generate_mac(1, store.lookup_network("pub")).startswith("aa:bb:cc:")


def test_ports_come_from_the_pool_then_above_the_highest(store: FileConfigStore) -> None:
    store.cluster.tcpudp_port_pool[:] = [11005]
    first = store.allocate_port(job_id=1)
    second = store.allocate_port(job_id=1)
    third = store.allocate_port(job_id=2)
    assert (first, second, third) == (11005, C.FIRST_DRBD_PORT, C.FIRST_DRBD_PORT + 1)
    assert store.cluster.highest_used_port == C.FIRST_DRBD_PORT + 1
    # job 1 fails: both its ports go back to the pool and are handed out again
    store.release_reservations(1)
    assert sorted(store.cluster.tcpudp_port_pool) == [C.FIRST_DRBD_PORT, 11005]
    assert store.allocate_port(job_id=3) == C.FIRST_DRBD_PORT


def test_ports_used_by_a_committed_instance_stay_taken(store: FileConfigStore) -> None:
    port = store.allocate_port(job_id=1)
    run(store.add_instance(make_instance("a.example.com", "ia", network_port=port)))
    store.release_reservations(1)
    assert port not in store.cluster.tcpudp_port_pool
    assert store.allocate_port(job_id=2) != port
    # removing the instance frees its port for later
    run(store.remove_instance("ia"))
    assert port in store.cluster.tcpudp_port_pool
    assert reload(store).cluster.tcpudp_port_pool == store.cluster.tcpudp_port_pool


def test_a_port_an_instance_stops_using_returns_to_the_pool(store: FileConfigStore) -> None:
    run(store.add_instance(make_instance("a.example.com", "ia", "n1", "n2")))
    old_port = int(store.get_instance("ia").disks[0].logical_id[2])
    new_port = store.allocate_port(job_id=1)
    # replace-disks -n writes a copy whose DRBD disk has a new secondary and port
    updated = store.get_instance("ia").copy()
    updated.disks[0].logical_id = ["n1", "n3", new_port, 0, 0, "s" * 40]
    run(store.update_instance(updated))
    store.release_reservations(1)
    pool = store.cluster.tcpudp_port_pool
    assert old_port in pool and new_port not in pool
    assert reload(store).cluster.tcpudp_port_pool == pool
    # an update that keeps its ports gives nothing back
    before = list(pool)
    run(store.update_instance(store.get_instance("ia").copy()))
    assert store.cluster.tcpudp_port_pool == before


def test_port_exhaustion(store: FileConfigStore) -> None:
    store.cluster.highest_used_port = C.LAST_DRBD_PORT
    with pytest.raises(errors.ConfigurationError, match="highest used port"):
        store.allocate_port(job_id=1)


def test_drbd_minors(store: FileConfigStore) -> None:
    run(store.add_instance(make_instance("a.example.com", "ia", "n1", "n2")))
    # minor 0 is used on n1 and n2 by the instance
    assert store.allocate_drbd_minors(["n1", "n3"], job_id=1) == [1, 0]
    assert store.allocate_drbd_minors(["n1", "n1"], job_id=2) == [2, 3]
    assert store.drbd_minor_map()["n1"] == [0, 1, 2, 3]
    store.release_reservations(1)
    assert store.allocate_drbd_minors(["n1"], job_id=3) == [1]


def test_unique_names_and_secrets(store: FileConfigStore) -> None:
    names = store.generate_lv_names([".disk0_data", ".disk0_meta"], job_id=1)
    assert names[0].endswith(".disk0_data") and names[1].endswith(".disk0_meta")
    assert names[0].split(".")[0] != names[1].split(".")[0]
    store.reserve_lv("fixed", job_id=1)
    with pytest.raises(errors.OpPrereqError):
        store.reserve_lv("fixed", job_id=2)
    secret = store.generate_drbd_secret(job_id=1)
    assert len(secret) == C.DRBD_SECRET_LEN and int(secret, 16) >= 0
    assert store.generate_unique_id(1) != store.generate_unique_id(1)


# --- replication and verify -----------------------------------------------------------------


class FakeDistributor:
    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.pushes: list[tuple[list[str], int]] = []

    async def upload_config(
        self, nodes: list[objects.Node], config_json: str, serial: int
    ) -> dict[str, str | None]:
        msgspec.json.decode(config_json)  # valid JSON
        self.pushes.append(([n.name for n in nodes], serial))
        await asyncio.sleep(0)
        return {n.uuid: ("Node is unreachable" if n.uuid in self.failing else None) for n in nodes}


def test_replication_to_candidates_is_async_and_records_stale(
    store: FileConfigStore, caplog: pytest.LogCaptureFixture
) -> None:
    dist = FakeDistributor(failing={"n3"})
    store.set_distributor(dist)

    async def scenario() -> None:
        await store.add_instance(make_instance("a.example.com", "ia"))
        await store.flush()

    run(scenario())
    # the master itself is not a target; both other candidates are
    assert dist.pushes[-1] == (["node2.example.com", "node3.example.com"], store.serial_no)
    assert list(store.stale_candidates()) == ["n3"]
    assert any("node3.example.com" in rec.message for rec in caplog.records)
    assert any("node3.example.com: configuration copy is out of date" in e for e in store.verify())
    dist.failing.clear()

    async def again() -> None:
        await store.set_instance_admin_state("ia", C.ADMINST_UP)
        await store.flush()

    run(again())
    assert store.stale_candidates() == {}


def test_replication_failure_never_fails_the_write(store: FileConfigStore) -> None:
    class Broken:
        async def upload_config(self, *args: Any) -> dict[str, str | None]:
            raise RuntimeError("boom")

    store.set_distributor(Broken())

    async def scenario() -> None:
        await store.add_instance(make_instance("a.example.com", "ia"))
        await store.flush()

    run(scenario())
    assert "ia" in reload(store).instances
    assert set(store.stale_candidates()) == {"n2", "n3"}


def test_offline_candidates_are_skipped(store: FileConfigStore) -> None:
    dist = FakeDistributor(failing=set())
    store.set_distributor(dist)
    store.nodes["n3"].offline = True
    store.nodes["n3"].master_candidate = False

    async def scenario() -> None:
        await store.update_node(store.nodes["n3"])
        await store.flush()

    run(scenario())
    assert dist.pushes[-1][0] == ["node2.example.com"]


def test_verify_clean_and_broken(store: FileConfigStore) -> None:
    run(
        store.add_instance(
            make_instance(
                "a.example.com", "ia", "n1", "n2", nics=[objects.NIC(mac="aa:00:00:00:00:01")]
            )
        )
    )
    # the sample DRBD port was not allocated through the store
    assert store.verify() == ["port 11002 is in use but above the highest used port 10999"]
    store.cluster.highest_used_port = 11100
    assert store.verify() == []
    data = store.data
    data.nodes["n3"].group = "nope"
    data.cluster.master_node = "gone"
    dup = make_instance(
        "b.example.com", "ib", "n1", "n2", nics=[objects.NIC(mac="aa:00:00:00:00:01")]
    )
    data.instances["ib"] = dup
    data.instances["ic"] = make_instance("c.example.com", "ic", pnode="missing")
    problems = store.verify()
    assert "node 'node3.example.com' has invalid node group 'nope'" in problems
    assert "master node 'gone' is not in the node list" in problems
    assert "duplicate MAC address aa:00:00:00:00:01" in problems
    assert "instance 'c.example.com' has invalid primary node 'missing'" in problems
    assert any(p.startswith("duplicate DRBD minor 0 on node n1") for p in problems)
    assert any(p.startswith("duplicate network port") for p in problems)
