"""Consistency checks of a configuration (Ganeti's ConfigWriter.VerifyConfig).

`verify_config` never raises: it returns one message per problem, worded for
``gnt-cluster verify`` ("* Verifying cluster config" section).
"""

from __future__ import annotations

from collections import Counter

from corral import constants as C
from corral import objects
from corral.config.util import iter_disks

_TEMPLATE_DEV_TYPES: dict[str, set[str]] = {
    C.DT_DISKLESS: set(),
    C.DT_FILE: {C.LD_FILE},
    C.DT_SHARED_FILE: {C.LD_SHARED_FILE},
    C.DT_PLAIN: {C.LD_LV},
    C.DT_DRBD8: {C.LD_DRBD8},
}


def _duplicates(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def _check_keys(errors: list[str], kind: str, table: dict[str, objects.TaggableObject]) -> None:
    for key, obj in table.items():
        if obj.uuid != key:
            errors.append(f"{kind} '{key}' is indexed by wrong UUID '{obj.uuid}'")


def verify_config(data: objects.ConfigData) -> list[str]:
    """Every inconsistency found in `data` (empty list = consistent)."""
    errors: list[str] = []
    cluster = data.cluster
    _check_keys(errors, "node", dict(data.nodes))
    _check_keys(errors, "instance", dict(data.instances))
    _check_keys(errors, "node group", dict(data.nodegroups))
    _check_keys(errors, "network", dict(data.networks))

    if cluster.master_node not in data.nodes:
        errors.append(f"master node '{cluster.master_node}' is not in the node list")
    if not data.nodegroups:
        errors.append("no node groups defined")
    for name in _duplicates([n.name for n in data.nodes.values()]):
        errors.append(f"duplicate node name '{name}'")
    for name in _duplicates([i.name for i in data.instances.values()]):
        errors.append(f"duplicate instance name '{name}'")
    for name in _duplicates([g.name for g in data.nodegroups.values()]):
        errors.append(f"duplicate node group name '{name}'")

    for node in data.nodes.values():
        if node.group not in data.nodegroups:
            errors.append(f"node '{node.name}' has invalid node group '{node.group}'")
        if node.master_candidate and not node.master_capable:
            errors.append(f"node '{node.name}' is a master candidate but not master capable")
        if node.master_candidate and (node.offline or node.drained):
            errors.append(f"node '{node.name}' is a master candidate but offline or drained")

    candidates = sum(1 for n in data.nodes.values() if n.master_candidate)
    capable = sum(1 for n in data.nodes.values() if n.master_capable and not n.offline)
    wanted = min(cluster.candidate_pool_size, capable)
    if candidates < wanted:
        errors.append(f"Not enough master candidates: actual {candidates}, target {wanted}")

    macs: list[str] = []
    ports: list[str] = []
    minors: list[str] = []
    for inst in data.instances.values():
        if inst.primary_node not in data.nodes:
            errors.append(f"instance '{inst.name}' has invalid primary node '{inst.primary_node}'")
        for snode in inst.secondary_nodes:
            if snode not in data.nodes:
                errors.append(f"instance '{inst.name}' has invalid secondary node '{snode}'")
        if inst.admin_state not in (C.ADMINST_UP, C.ADMINST_DOWN, C.ADMINST_OFFLINE):
            errors.append(f"instance '{inst.name}' has invalid admin state '{inst.admin_state}'")
        allowed = _TEMPLATE_DEV_TYPES.get(inst.disk_template)
        if allowed is None:
            errors.append(
                f"instance '{inst.name}' has invalid disk template '{inst.disk_template}'"
            )
        else:
            for idx, disk in enumerate(inst.disks):
                if disk.dev_type not in allowed:
                    errors.append(
                        f"instance '{inst.name}' disk {idx} has type '{disk.dev_type}',"
                        f" not allowed with disk template '{inst.disk_template}'"
                    )
        if inst.network_port is not None:
            ports.append(str(inst.network_port))
        for nic in inst.nics:
            if nic.mac:
                macs.append(nic.mac)
            if nic.network is not None and nic.network not in data.networks:
                errors.append(f"instance '{inst.name}' has NIC on unknown network {nic.network}")
        for disk in iter_disks(inst.disks):
            if disk.dev_type != C.LD_DRBD8:
                continue
            lid = disk.logical_id
            if len(lid) != 6:
                errors.append(f"instance '{inst.name}' has malformed DRBD disk {disk.uuid}")
                continue
            if lid[0] == lid[1]:
                errors.append(f"instance '{inst.name}' DRBD disk {disk.uuid} uses one node twice")
            ports.append(str(lid[2]))
            minors.append(f"{lid[0]}/{lid[3]}")
            minors.append(f"{lid[1]}/{lid[4]}")
            for node in lid[:2]:
                if node not in data.nodes:
                    errors.append(
                        f"instance '{inst.name}' DRBD disk {disk.uuid} uses unknown node {node}"
                    )

    for mac in _duplicates(macs):
        errors.append(f"duplicate MAC address {mac}")
    for port in _duplicates(ports):
        errors.append(f"duplicate network port {port}")
    for minor in _duplicates(minors):
        node_uuid, num = minor.split("/", 1)
        errors.append(f"duplicate DRBD minor {num} on node {node_uuid}")
    used_ports = {int(p) for p in ports}
    for used in sorted(used_ports):
        if C.FIRST_DRBD_PORT <= used <= C.LAST_DRBD_PORT and used > cluster.highest_used_port:
            errors.append(
                f"port {used} is in use but above the highest used port {cluster.highest_used_port}"
            )
    for free in cluster.tcpudp_port_pool:
        if free in used_ports:
            errors.append(f"port {free} is in the free port pool but in use")
    return errors
