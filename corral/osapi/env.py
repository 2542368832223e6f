"""The environment handed to OS scripts (Ganeti's OSCoreEnv / OSEnvironment).

OS scripts get their input only through the environment, which is built from
scratch (never inherited from noded), exactly as Ganeti 3.0 builds it, so
scripts written for Ganeti see the same variables:

* core: ``OS_API_VERSION`` (highest version both sides support), ``OS_NAME``,
  ``OS_VARIANT`` (empty for an OS without variants or with API < 15; the OS's
  first variant when none was given), ``DEBUG_LEVEL``, ``OSP_<NAME>`` for each OS
  parameter (upper-cased, ``-`` -> ``_``), ``PATH=/sbin:/bin:/usr/sbin:/usr/bin``.
* instance: ``INSTANCE_NAME|OS|UUID|CTIME|MTIME|PRIMARY_NODE``,
  ``INSTANCE_SECONDARY_NODES`` (space separated node UUIDs), ``HYPERVISOR``,
  ``INSTANCE_BE_<param>`` and ``INSTANCE_HV_<param>`` (Python ``str()`` of each
  value, so booleans read ``True``/``False``).
* ``DISK_COUNT`` and per disk ``DISK_<i>_ACCESS|UUID|SIZE`` always,
  ``_PATH``/``_URI``/``_NAME`` when set, ``_FRONTEND_TYPE`` when the hypervisor
  parameters have ``disk_type``, ``_BACKEND_TYPE`` = ``block`` or ``file:<driver>``.
* ``NIC_COUNT`` and per NIC ``NIC_<i>_MAC|UUID|MODE`` always, ``_NAME``/``_IP``
  when set, ``_BRIDGE`` in bridged mode, ``_LINK`` when non-empty,
  ``_NETWORK_NAME|UUID|TAGS`` (+ ``_SUBNET|GATEWAY|SUBNET6|GATEWAY6|MAC_PREFIX``
  when set) for a NIC on a network, ``_FRONTEND_TYPE`` from hvparams ``nic_type``.

The caller passes *filled* parameters (cluster defaults applied): the
instance's ``beparams``/``hvparams`` as Ganeti's RPC layer sends them, the NICs'
``nicparams``, and the OS parameters (public and private merged). Script
specific variables (``INSTANCE_REINSTALL``, ``OLD_INSTANCE_NAME``, ``EXPORT_*``,
``IMPORT_*``) go in `extra`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from corral import constants as C
from corral import objects
from corral.osapi.definition import (
    DEFAULT_GANETI_ETC_DIR,
    IMAGE_CONFIG_SUBDIR,
    OS_API_V15,
    OsDefinition,
)

#: Ganeti's HOOKS_PATH, the only PATH OS scripts get
SCRIPT_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"
#: Hypervisor parameters that become the *_FRONTEND_TYPE variables
HV_DISK_TYPE = "disk_type"
HV_NIC_TYPE = "nic_type"
#: Disk types seen by the node as block devices (everything else here is a file)
BLOCK_DEV_TYPES = frozenset({C.LD_LV, C.LD_DRBD8, "blockdev", "rbd", "ext"})
FILE_DEV_TYPES = frozenset({C.LD_FILE, C.LD_SHARED_FILE, "gluster"})
#: Environment variable the bundled ``image`` OS reads its configuration from
IMAGE_CONFIG_ENV = "IMAGE_CONFIG_DIR"
DEFAULT_IMAGE_CONFIG_DIR = f"{DEFAULT_GANETI_ETC_DIR}/{IMAGE_CONFIG_SUBDIR}"


class DiskEnv(msgspec.Struct, frozen=True, kw_only=True):
    """What an OS script learns about one disk (in instance disk order)."""

    uuid: str
    size: int  # MiB
    access: str = C.DISK_RDWR
    path: str | None = None  # node-side device or file; None if only a URI exists
    uri: str | None = None  # userspace URI (e.g. for qemu), if any
    name: str | None = None
    backend_type: str | None = None  # "block" or "file:<driver>"

    @classmethod
    def from_disk(cls, disk: objects.Disk, path: str | None, uri: str | None = None) -> DiskEnv:
        """Describe `disk` as assembled on this node at `path` (and/or `uri`)."""
        backend: str | None = None
        if disk.dev_type in BLOCK_DEV_TYPES:
            backend = "block"
        elif disk.dev_type in FILE_DEV_TYPES:
            driver = str(disk.logical_id[0]) if disk.logical_id else "loop"
            backend = f"file:{driver}"
        return cls(
            uuid=disk.uuid,
            size=disk.size,
            access=disk.mode,
            path=path,
            uri=uri,
            name=disk.name,
            backend_type=backend,
        )


class NicEnv(msgspec.Struct, frozen=True, kw_only=True):
    """What an OS script learns about one NIC (filled nicparams applied)."""

    mac: str
    uuid: str
    mode: str
    link: str = ""
    name: str | None = None
    ip: str | None = None
    # NETWORK_* entries (without the NIC_<i>_ prefix) when the NIC is on a network
    network: dict[str, str] = msgspec.field(default_factory=dict)

    @classmethod
    def from_nic(
        cls,
        nic: objects.NIC,
        nicparams: Mapping[str, Any] | None = None,
        network: objects.Network | None = None,
    ) -> NicEnv:
        """Describe `nic`; `nicparams` are the filled ones (default: the NIC's own)."""
        params = dict(nic.nicparams if nicparams is None else nicparams)
        return cls(
            mac=nic.mac,
            uuid=nic.uuid,
            mode=str(params.get(C.NIC_MODE, C.NIC_MODE_BRIDGED)),
            link=str(params.get(C.NIC_LINK) or ""),
            name=nic.name,
            ip=nic.ip,
            network=network_env(network) if network is not None else {},
        )


def network_env(net: objects.Network) -> dict[str, str]:
    """Ganeti's Network.HooksDict without prefix (``NETWORK_NAME`` ...)."""
    result = {
        "NETWORK_NAME": net.name,
        "NETWORK_UUID": net.uuid,
        "NETWORK_TAGS": " ".join(net.tags),
    }
    for key, value in (
        ("NETWORK_SUBNET", net.network),
        ("NETWORK_GATEWAY", net.gateway),
        ("NETWORK_SUBNET6", net.network6),
        ("NETWORK_GATEWAY6", net.gateway6),
        ("NETWORK_MAC_PREFIX", net.mac_prefix),
    ):
        if value:
            result[key] = value
    return result


def effective_variant(os_def: OsDefinition, variant: str | None) -> str:
    """The OS_VARIANT value: "" without variant support, else given or first."""
    if os_def.api_version >= OS_API_V15 and os_def.variants:
        return variant or os_def.variants[0]
    return ""


def core_env(
    os_def: OsDefinition,
    variant: str | None,
    osparams: Mapping[str, Any],
    debug: int = 0,
) -> dict[str, str]:
    """Ganeti's OSCoreEnv: what every script (also ``verify``) gets."""
    env = {
        "OS_API_VERSION": str(os_def.api_version),
        "OS_NAME": os_def.name,
        "OS_VARIANT": effective_variant(os_def, variant),
        "DEBUG_LEVEL": str(int(debug)),
        "PATH": SCRIPT_PATH,
    }
    for pname, pvalue in osparams.items():
        env["OSP_" + pname.upper().replace("-", "_")] = str(pvalue)
    return env


def build_env(
    os_def: OsDefinition,
    variant: str | None,
    instance: objects.Instance,
    disks: list[DiskEnv],
    nics: list[NicEnv],
    hypervisor: str,
    osparams: Mapping[str, Any],
    debug: int = 0,
    extra: Mapping[str, str] | None = None,
    *,
    image_config_dir: str | None = None,
) -> dict[str, str]:
    """Ganeti's OSEnvironment for `instance` (see the module docstring).

    `disks` and `nics` follow the instance's order. `image_config_dir` (from
    ``Paths.ganeti_etc_dir`` + ``/instance-image``) is exported as
    ``IMAGE_CONFIG_DIR`` for the bundled ``image`` OS when it differs from the
    default ``/etc/ganeti/instance-image``, so a default node's environment
    carries nothing Ganeti would not set. `extra` is applied last.
    """
    env = core_env(os_def, variant, osparams, debug)
    env["INSTANCE_NAME"] = instance.name
    env["INSTANCE_OS"] = instance.os
    env["INSTANCE_UUID"] = instance.uuid
    env["INSTANCE_CTIME"] = str(instance.ctime)
    env["INSTANCE_MTIME"] = str(instance.mtime)
    env["INSTANCE_PRIMARY_NODE"] = instance.primary_node
    env["INSTANCE_SECONDARY_NODES"] = " ".join(instance.secondary_nodes)
    env["HYPERVISOR"] = hypervisor
    env["DISK_COUNT"] = str(len(disks))
    env["NIC_COUNT"] = str(len(nics))

    hvparams = instance.hvparams
    for idx, disk in enumerate(disks):
        pre = f"DISK_{idx}_"
        env[pre + "ACCESS"] = disk.access
        env[pre + "UUID"] = disk.uuid
        env[pre + "SIZE"] = str(disk.size)
        if disk.path:
            env[pre + "PATH"] = disk.path
        if disk.uri:
            env[pre + "URI"] = disk.uri
        if disk.name:
            env[pre + "NAME"] = disk.name
        if HV_DISK_TYPE in hvparams:
            env[pre + "FRONTEND_TYPE"] = str(hvparams[HV_DISK_TYPE])
        if disk.backend_type:
            env[pre + "BACKEND_TYPE"] = disk.backend_type

    for idx, nic in enumerate(nics):
        pre = f"NIC_{idx}_"
        env[pre + "MAC"] = nic.mac
        env[pre + "UUID"] = nic.uuid
        if nic.name:
            env[pre + "NAME"] = nic.name
        if nic.ip:
            env[pre + "IP"] = nic.ip
        env[pre + "MODE"] = nic.mode
        if nic.mode == C.NIC_MODE_BRIDGED:
            env[pre + "BRIDGE"] = nic.link
        if nic.link:
            env[pre + "LINK"] = nic.link
        for key, value in nic.network.items():
            env[pre + key] = value
        if HV_NIC_TYPE in hvparams:
            env[pre + "FRONTEND_TYPE"] = str(hvparams[HV_NIC_TYPE])

    for source, kind in ((instance.beparams, "BE"), (hvparams, "HV")):
        for key, value in source.items():
            env[f"INSTANCE_{kind}_{key}"] = str(value)

    if image_config_dir and os.path.normpath(image_config_dir) != DEFAULT_IMAGE_CONFIG_DIR:
        env[IMAGE_CONFIG_ENV] = image_config_dir
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env
