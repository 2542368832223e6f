"""The site's wiring: a switch namespace and one veth link per network per node.

The kernel here has neither 802.1Q nor bridge VLAN filtering, so each network
(management/storage on ``br-man``, public on ``br-public``) gets its own veth
pair per node: the switch end (``nN-man``/``nN-pub``) is enslaved to the switch
namespace's bridge of the same name, the node end (``eth0``/``eth1``) to the
node's own ``br-man``/``br-public``. The node's management IP sits on its
``br-man``; ``br-public`` has no node IP (instances attach there). Nothing is
created in the host's network namespace; the switch is a named namespace
(``ip netns``) so it survives the process that made it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

from corral.testkit import layout as L
from corral.testkit import syscalls as sc
from corral.testkit.errors import TestkitError


def _ip_batch(prefix: list[str], commands: list[str], *, force: bool = False) -> None:
    argv = [*prefix, *(["-force"] if force else []), "-batch", "-"]
    proc = subprocess.run(
        argv, input="\n".join(commands) + "\n", capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 and not force:
        detail = proc.stderr.strip().splitlines()
        raise TestkitError(f"ip failed: {detail[-1] if detail else proc.returncode}")


def switch_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def create_switch(name: str) -> None:
    """The switch namespace with bridges br-man and br-public, up."""
    if switch_exists(name):
        delete_switch(name)
    proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TestkitError(f"Cannot create network namespace {name}: {proc.stderr.strip()}")
    commands = ["link set lo up"]
    for bridge, _node_link, _suffix in L.NETWORKS:
        commands += [f"link add {bridge} type bridge", f"link set {bridge} up"]
    _ip_batch(["ip", "-n", name], commands)


def delete_switch(name: str) -> None:
    if switch_exists(name):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _switch_link(index: int, suffix: str) -> str:
    return f"n{index}-{suffix}"


def mac_address(kit_id: str, index: int, network: int, switch_side: bool = False) -> str:
    """Fixed, locally administered MAC of a node's link (a NIC keeps its MAC on reboot,
    so the other nodes' ARP caches stay right after ``crash`` and ``boot``)."""
    octets = [0x02, *bytes.fromhex(kit_id[:6]), index, network + (0x80 if switch_side else 0)]
    return ":".join(f"{o:02x}" for o in octets)


def wire_node(switch: str, kit_id: str, index: int, pid: int) -> None:
    """Plug node `index` (its init is `pid`) into every network and configure it."""
    unwire_node(switch, index)
    sw_cmds: list[str] = []
    node_cmds = ["link set lo up"]
    for network, (bridge, node_link, suffix) in enumerate(L.NETWORKS, start=1):
        link = _switch_link(index, suffix)
        node_mac = mac_address(kit_id, index, network)
        switch_mac = mac_address(kit_id, index, network, switch_side=True)
        sw_cmds += [
            f"link add {link} address {switch_mac} type veth"
            f" peer name {node_link} address {node_mac} netns {pid}",
            f"link set {link} master {bridge}",
            f"link set {link} up",
        ]
        node_cmds += [
            f"link add {bridge} address {node_mac} type bridge",
            f"link set {node_link} master {bridge}",
            f"link set {node_link} up",
            f"link set {bridge} up",
        ]
    node_cmds.append(f"addr add {L.node_ip(index)}/{L.MAN_PREFIXLEN} dev br-man")
    _ip_batch(["ip", "-n", switch], sw_cmds)
    _ip_batch(["nsenter", "-t", str(pid), "-n", "ip"], node_cmds)


def unwire_node(switch: str, index: int) -> None:
    """Pull node `index`'s cables out of the switch (no error if already out)."""
    if not switch_exists(switch):
        return
    cmds = [f"link del {_switch_link(index, suffix)}" for _b, _n, suffix in L.NETWORKS]
    _ip_batch(["ip", "-n", switch], cmds, force=True)


def tcp_connects(pid: int, host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connect to host:port succeeds from inside `pid`'s network namespace.

    Runs in a throw-away thread: setns(CLONE_NEWNET) only moves the calling
    thread, so the caller stays in its own namespace.
    """
    result: list[bool] = []

    def worker() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                sc.setns(fd, sc.CLONE_NEWNET)
            finally:
                os.close(fd)
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(timeout + 5)
    return bool(result and result[0])
