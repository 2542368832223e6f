"""The read half of `ConfigStore`: lookups and name expansion.

Lookups return the live objects of the in-memory config: read-only by
convention (change a copy and pass it to an ``update_*`` coroutine).
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects
from corral.config.names import match_name_component
from corral.errors import ECODE_INVAL, ECODE_NOENT, ConfigurationError, OpPrereqError


def filled_ndparams(data: objects.ConfigData, node: objects.Node) -> dict[str, Any]:
    """The node's parameters with Ganeti's inheritance: defaults < cluster <
    node group < node (so e.g. one ``oob_program`` can serve a whole group)."""
    merged = objects.fill_dict(dict(C.NDC_DEFAULTS), data.cluster.ndparams)
    group = data.nodegroups.get(node.group)
    if group is not None:
        merged = objects.fill_dict(merged, group.ndparams)
    return objects.fill_dict(merged, node.ndparams)


class ConfigReader:
    """Lookups over ``self._data`` (a `objects.ConfigData`)."""

    _data: objects.ConfigData

    @property
    def data(self) -> objects.ConfigData:
        return self._data

    @property
    def cluster(self) -> objects.Cluster:
        return self._data.cluster

    @property
    def nodes(self) -> dict[str, objects.Node]:
        return self._data.nodes

    @property
    def instances(self) -> dict[str, objects.Instance]:
        return self._data.instances

    @property
    def nodegroups(self) -> dict[str, objects.NodeGroup]:
        return self._data.nodegroups

    @property
    def networks(self) -> dict[str, objects.Network]:
        return self._data.networks

    @property
    def serial_no(self) -> int:
        return self._data.serial_no

    def get_instance(self, uuid: str) -> objects.Instance | None:
        return self._data.instances.get(uuid)

    def get_instance_by_name(self, name: str) -> objects.Instance | None:
        for inst in self._data.instances.values():
            if inst.name == name:
                return inst
        return None

    def get_node(self, uuid: str) -> objects.Node | None:
        return self._data.nodes.get(uuid)

    def filled_ndparams(self, node: objects.Node) -> dict[str, Any]:
        return filled_ndparams(self._data, node)

    def get_node_by_name(self, name: str) -> objects.Node | None:
        for node in self._data.nodes.values():
            if node.name == name:
                return node
        return None

    def get_group(self, uuid: str) -> objects.NodeGroup | None:
        return self._data.nodegroups.get(uuid)

    def get_group_by_name(self, name: str) -> objects.NodeGroup | None:
        for group in self._data.nodegroups.values():
            if group.name == name:
                return group
        return None

    def get_network(self, uuid: str) -> objects.Network | None:
        return self._data.networks.get(uuid)

    def get_network_by_name(self, name: str) -> objects.Network | None:
        for net in self._data.networks.values():
            if net.name == name:
                return net
        return None

    def all_instances(self) -> list[objects.Instance]:
        """Instances sorted by name."""
        return sorted(self._data.instances.values(), key=lambda i: i.name)

    def all_nodes(self) -> list[objects.Node]:
        """Nodes sorted by name."""
        return sorted(self._data.nodes.values(), key=lambda n: n.name)

    def all_groups(self) -> list[objects.NodeGroup]:
        return sorted(self._data.nodegroups.values(), key=lambda g: g.name)

    def node_name(self, uuid: str) -> str:
        """Name of a node, or the UUID itself if unknown (for messages)."""
        node = self._data.nodes.get(uuid)
        return node.name if node else uuid

    def master_node(self) -> objects.Node:
        node = self._data.nodes.get(self._data.cluster.master_node)
        if node is None:
            raise ConfigurationError("Master node not found in the configuration")
        return node

    def master_candidates(self, *, online_only: bool = False) -> list[objects.Node]:
        return [
            n for n in self.all_nodes() if n.master_candidate and not (online_only and n.offline)
        ]

    def node_instances(self, node_uuid: str) -> tuple[list[str], list[str]]:
        """(primary, secondary) instance UUIDs of a node."""
        prim: list[str] = []
        sec: list[str] = []
        for inst in self.all_instances():
            if inst.primary_node == node_uuid:
                prim.append(inst.uuid)
            elif node_uuid in inst.secondary_nodes:
                sec.append(inst.uuid)
        return prim, sec

    def group_nodes(self, group_uuid: str) -> list[str]:
        return [n.uuid for n in self.all_nodes() if n.group == group_uuid]

    def expand_instance_name(self, name: str) -> tuple[str, str]:
        """Resolve user input to ``(uuid, full name)``; a UUID is accepted too."""
        if name in self._data.instances:
            return name, self._data.instances[name].name
        by_name = {i.name: u for u, i in self._data.instances.items()}
        found = match_name_component(name, by_name)
        if found is None:
            raise OpPrereqError(f"Instance '{name}' not known", ECODE_NOENT)
        return by_name[found], found

    def expand_node_name(self, name: str) -> tuple[str, str]:
        """Resolve user input to ``(uuid, full name)``; a UUID is accepted too."""
        if name in self._data.nodes:
            return name, self._data.nodes[name].name
        by_name = {n.name: u for u, n in self._data.nodes.items()}
        found = match_name_component(name, by_name)
        if found is None:
            raise OpPrereqError(f"Node '{name}' not known", ECODE_NOENT)
        return by_name[found], found

    def lookup_group(self, target: str | None) -> str:
        """Group UUID for a name or UUID; None means "the only group" (Ganeti)."""
        groups = self._data.nodegroups
        if target is None:
            if len(groups) != 1:
                raise OpPrereqError(
                    "More than one node group exists. Target group must be specified explicitly.",
                    ECODE_INVAL,
                )
            return next(iter(groups))
        if target in groups:
            return target
        for uuid, group in groups.items():
            if group.name == target:
                return uuid
        raise OpPrereqError(f"Node group '{target}' not found", ECODE_NOENT)

    def lookup_network(self, target: str) -> str:
        if target in self._data.networks:
            return target
        for uuid, net in self._data.networks.items():
            if net.name == target:
                return uuid
        raise OpPrereqError(f"Network '{target}' not found", ECODE_NOENT)
