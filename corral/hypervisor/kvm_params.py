"""The KVM hypervisor parameter table (Ganeti 3.0's names, defaults and checks).

Names and defaults are those a Ganeti 3.0.2 cluster reports for ``kvm``
(``gnt-cluster info`` / RAPI ``/2/info``), so ``-H kvm:...`` lines written for
Ganeti validate unchanged, e.g. the paper's
``-H kvm:kernel_path=,initrd_path=,vnc_bind_address=0.0.0.0`` and
``-H boot_order=cdrom,cdrom_image_path=/iso/x.iso``.

Two kinds of checks, as in Ganeti's ``hv_base``:

* syntax checks (`Param.check`, `Param.choices`, `check_relations`) run on the
  master and never touch the world (except the interface-name test of
  ``vnc_bind_address``/``spice_bind``, as Ganeti does);
* node checks (`Param.node_check`) run on the node: files and directories
  that must exist there (kernel, initrd, ISO images, ...).

Both the ``kvm`` and the ``fake`` hypervisor use this table.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from typing import Any

from corral.errors import HypervisorError
from corral.hypervisor.base import Param

# -- value sets (Ganeti's constants) --------------------------------------------------
BOOT_ORDERS = ("cdrom", "disk", "floppy", "network")
NIC_TYPES = (
    "e1000",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "paravirtual",
    "pcnet",
    "rtl8139",
)
DISK_TYPES = (
    "ide",
    "mtd",
    "paravirtual",
    "pflash",
    "scsi",
    "sd",
    "scsi-generic",
    "scsi-block",
    "scsi-hd",
    "scsi-cd",
)
SCSI_CONTROLLER_TYPES = ("lsi", "megasas", "virtio-scsi-pci")
CACHE_TYPES = ("default", "none", "writeback", "writethrough")
DISCARD_TYPES = ("default", "ignore", "unmap")
AIO_TYPES = ("native", "threads")
MOUSE_TYPES = ("mouse", "tablet")
SECURITY_MODELS = ("none", "pool", "user")
KVM_FLAG_VALUES = ("disabled", "enabled")
REBOOT_BEHAVIORS = ("exit", "reboot")
MIGRATION_MODES = ("live", "non-live")
SPICE_LOSSLESS = ("auto_glz", "auto_lz", "glz", "lz", "off", "quic")
SPICE_LOSSY = ("always", "auto", "never")
SPICE_VIDEO_DETECTION = ("all", "filter", "off")
SPICE_IP_VERSIONS = (0, 4, 6)
VALID_SERIAL_SPEEDS = (
    75,
    110,
    300,
    600,
    1200,
    1800,
    2400,
    4800,
    9600,
    14400,
    19200,
    28800,
    38400,
    57600,
    115200,
    230400,
    345600,
    460800,
)
QEMU_PCI_SLOTS = 32
MAX_VIRTIO_NET_QUEUES = 8


# -- elementary checks (return an error message or None) --------------------------------
def is_norm_abs_path(path: str) -> bool:
    """Ganeti's IsNormAbsPath: absolute, normalized, no leading '//'."""
    return os.path.isabs(path) and os.path.normpath(path) == path and not path.startswith("//")


def is_url(value: str) -> bool:
    return re.match(r"^(https?|ftp)://\S+$", value) is not None


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_interface(name: str) -> bool:
    """True if `name` is a network interface here (in this network namespace)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _abs_path(value: Any) -> str | None:
    return None if is_norm_abs_path(str(value)) else "must be an absolute normalized path"


def _abs_path_or_url(value: Any) -> str | None:
    text = str(value)
    if is_norm_abs_path(text) or is_url(text):
        return None
    return "must be an absolute normalized path or a URL"


def _file_exists(value: Any) -> str | None:
    return None if os.path.isfile(str(value)) else "not found or not a file"


def _file_or_url_exists(value: Any) -> str | None:
    text = str(value)
    if is_url(text):
        return None
    return _file_exists(text)


def _dir_exists(value: Any) -> str | None:
    return None if os.path.isdir(str(value)) else "not found or not a directory"


def _non_negative(value: Any) -> str | None:
    return None if int(value) >= 0 else "cannot be negative"


def _net_port(value: Any) -> str | None:
    return None if 0 < int(value) < 65535 else "invalid port number"


def _virtio_queues(value: Any) -> str | None:
    if 0 < int(value) <= MAX_VIRTIO_NET_QUEUES:
        return None
    return f"invalid number of queues, must be between 1 and {MAX_VIRTIO_NET_QUEUES}"


def _pci_reservations(value: Any) -> str | None:
    if 0 <= int(value) <= QEMU_PCI_SLOTS:
        return None
    return f"The number of PCI slots managed by QEMU (max: {QEMU_PCI_SLOTS})"


def _spice_ip_version(value: Any) -> str | None:
    return None if int(value) in SPICE_IP_VERSIONS else "The SPICE IP version should be 4 or 6"


def parse_cpu_mask(mask: str) -> list[int] | None:
    """CPUs of a single mask such as ``0-2,5``; None if malformed."""
    cpus: list[int] = []
    for part in mask.split(","):
        part = part.strip()
        if not part:
            return None
        bounds = part.split("-")
        if len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            return None
        low, high = int(bounds[0]), int(bounds[-1])
        if low > high:
            return None
        cpus.extend(range(low, high + 1))
    return cpus


def _multi_cpu_mask(value: Any) -> str | None:
    for mask in str(value).split(":"):
        if mask.strip() == "all":
            continue
        if parse_cpu_mask(mask) is None:
            return "Multiple CPU mask definition is not well-formed"
    return None


# -- table ------------------------------------------------------------------------------
def _p(
    kind: str,
    default: Any,
    doc: str,
    *,
    required: bool = False,
    choices: tuple[str, ...] = (),
    check: Callable[[Any], str | None] | None = None,
    node_check: Callable[[Any], str | None] | None = None,
) -> Param:
    return Param(
        kind=kind,
        default=default,
        doc=doc,
        required=required,
        choices=choices,
        check=check,
        node_check=node_check,
    )


def _opt_file(default: str, doc: str) -> Param:
    return _p("path", default, doc, check=_abs_path, node_check=_file_exists)


def _opt_dir(default: str, doc: str) -> Param:
    return _p("path", default, doc, check=_abs_path, node_check=_dir_exists)


def _opt_file_or_url(default: str, doc: str) -> Param:
    return _p("path", default, doc, check=_abs_path_or_url, node_check=_file_or_url_exists)


def _flag(default: bool, doc: str) -> Param:
    return _p("bool", default, doc)


def _text(default: str, doc: str) -> Param:
    return _p("str", default, doc)


def _enum(default: str, choices: tuple[str, ...], doc: str, *, required: bool) -> Param:
    return _p("enum", default, doc, choices=choices, required=required)


PARAMETERS: dict[str, Param] = {
    "acpi": _flag(True, "Enable ACPI support in the guest"),
    "boot_order": _enum("disk", BOOT_ORDERS, "Boot device", required=True),
    "cdrom2_image_path": _opt_file_or_url("", "Second CD-ROM image (path or URL)"),
    "cdrom_disk_type": _enum("", DISK_TYPES, "Bus type of the CD-ROM", required=False),
    "cdrom_image_path": _opt_file_or_url("", "CD-ROM image (path or URL)"),
    "cpu_cores": _p("int", 0, "Cores per socket (0: QEMU decides)", check=_non_negative),
    "cpu_mask": _p("str", "all", "CPU pinning (e.g. 0-1:2:all)", check=_multi_cpu_mask),
    "cpu_sockets": _p("int", 0, "Sockets (0: QEMU decides)", check=_non_negative),
    "cpu_threads": _p("int", 0, "Threads per core (0: QEMU decides)", check=_non_negative),
    "cpu_type": _text("", "CPU model passed to -cpu"),
    "disk_aio": _enum("threads", AIO_TYPES, "Disk AIO mode", required=False),
    "disk_cache": _enum("default", CACHE_TYPES, "Disk cache mode", required=True),
    "disk_discard": _enum("default", DISCARD_TYPES, "Disk discard mode", required=False),
    "disk_type": _enum("paravirtual", DISK_TYPES, "Disk bus type", required=True),
    "floppy_image_path": _opt_file("", "Floppy image"),
    "initrd_path": _opt_file("", "Initial ramdisk for direct kernel boot"),
    "kernel_args": _text("ro", "Kernel command line for direct kernel boot"),
    "kernel_path": _opt_file("/boot/vmlinuz-3-kvmU", "Kernel for direct kernel boot"),
    "keymap": _text("", "VNC keyboard map"),
    "kvm_extra": _text("", "Extra arguments for the QEMU command line"),
    "kvm_flag": _enum("", KVM_FLAG_VALUES, "Force KVM acceleration on/off", required=False),
    "kvm_path": _p(
        "path",
        "/usr/bin/kvm",
        "QEMU binary",
        required=True,
        check=_abs_path,
        node_check=_file_exists,
    ),
    "kvm_pci_reservations": _p(
        "int", 12, "PCI slots reserved for QEMU's own devices", check=_pci_reservations
    ),
    "machine_version": _text("", "QEMU machine type"),
    "mem_path": _opt_dir("", "Hugepages mount for guest memory"),
    "migration_bandwidth": _p(
        "int", 32, "Migration bandwidth (MiB/s)", required=True, check=_non_negative
    ),
    "migration_caps": _text("", "QEMU migration capabilities (colon separated)"),
    "migration_downtime": _p(
        "int", 30, "Maximum migration downtime (ms)", required=True, check=_non_negative
    ),
    "migration_mode": _p(
        "str",
        "live",
        "Default migration mode",
        required=True,
        check=lambda v: None if v in MIGRATION_MODES else "invalid migration mode",
    ),
    "migration_port": _p("int", 8102, "Migration TCP port", required=True, check=_net_port),
    "nic_type": _enum("paravirtual", NIC_TYPES, "NIC model", required=True),
    "reboot_behavior": _enum("reboot", REBOOT_BEHAVIORS, "Action on guest reboot", required=True),
    "root_path": _text("/dev/vda1", "Root device for direct kernel boot"),
    "scsi_controller_type": _enum(
        "lsi", SCSI_CONTROLLER_TYPES, "SCSI controller model", required=True
    ),
    "security_domain": _text("", "User to run QEMU as (security_model=user)"),
    "security_model": _enum("none", SECURITY_MODELS, "QEMU process security", required=True),
    "serial_console": _flag(True, "Provide a serial console"),
    "serial_speed": _p("int", 38400, "Serial console speed (baud)"),
    "soundhw": _text("", "Sound hardware"),
    "spice_bind": _text("", "SPICE bind address or interface"),
    "spice_image_compression": _enum(
        "", SPICE_LOSSLESS, "SPICE lossless image compression", required=False
    ),
    "spice_ip_version": _p("int", 0, "SPICE IP version (0, 4, 6)", check=_spice_ip_version),
    "spice_jpeg_wan_compression": _enum(
        "", SPICE_LOSSY, "SPICE JPEG WAN compression", required=False
    ),
    "spice_password_file": _opt_file("", "SPICE password file"),
    "spice_playback_compression": _flag(True, "SPICE audio playback compression"),
    "spice_streaming_video": _enum(
        "", SPICE_VIDEO_DETECTION, "SPICE video stream detection", required=False
    ),
    "spice_tls_ciphers": _text("HIGH:-DES:-3DES:-EXPORT:-DH", "SPICE TLS ciphers"),
    "spice_use_tls": _flag(False, "SPICE over TLS"),
    "spice_use_vdagent": _flag(True, "SPICE guest agent channel"),
    "spice_zlib_glz_wan_compression": _enum(
        "", SPICE_LOSSY, "SPICE zlib-glz WAN compression", required=False
    ),
    "usb_devices": _text("", "Host USB devices to pass through"),
    "usb_mouse": _enum("", MOUSE_TYPES, "USB pointing device", required=False),
    "use_chroot": _flag(False, "Run QEMU in a chroot"),
    "use_guest_agent": _flag(False, "Provide a QEMU guest agent channel"),
    "use_localtime": _flag(False, "Guest clock in local time"),
    "user_shutdown": _flag(False, "Track guest-initiated shutdowns"),
    "vga": _text("", "VGA card model"),
    "vhost_net": _flag(False, "Use vhost-net"),
    "virtio_net_queues": _p("int", 1, "virtio-net queues", check=_virtio_queues),
    "vnc_bind_address": _text("", "VNC bind address, interface or path"),
    "vnc_password_file": _opt_file("", "VNC password file"),
    "vnc_tls": _flag(False, "VNC over TLS"),
    "vnc_x509_path": _opt_dir("", "VNC TLS certificates directory"),
    "vnc_x509_verify": _flag(False, "Verify VNC clients' certificates"),
    "vnet_hdr": _flag(True, "Use IFF_VNET_HDR on taps"),
}

# SPICE parameters that make no sense without spice_bind
_SPICE_ADDITIONAL = (
    "spice_ip_version",
    "spice_password_file",
    "spice_image_compression",
    "spice_jpeg_wan_compression",
    "spice_zlib_glz_wan_compression",
    "spice_streaming_video",
    "spice_use_tls",
)


def check_relations(hv: Mapping[str, Any]) -> None:
    """KVM's checks across parameters (filled, typed dict); Ganeti's messages."""
    if hv["kernel_path"] and not hv["root_path"]:
        raise HypervisorError("Need a root partition for the instance, if a kernel is defined")
    if hv["boot_order"] == "cdrom" and not hv["cdrom_image_path"]:
        raise HypervisorError("Cannot boot from cdrom without an ISO path")
    if hv["serial_console"] and hv["serial_speed"] not in VALID_SERIAL_SPEEDS:
        raise HypervisorError(
            "Invalid serial console speed, must be one of: "
            + ", ".join(str(s) for s in VALID_SERIAL_SPEEDS)
        )
    if hv["vnc_x509_verify"] and not hv["vnc_x509_path"]:
        raise HypervisorError("vnc_x509_path must be defined, if vnc_x509_verify is")
    vnc = hv["vnc_bind_address"]
    if vnc and not (is_ip_address(vnc) or is_norm_abs_path(vnc) or is_interface(vnc)):
        raise HypervisorError(
            "VNC: The vnc_bind_address parameter must be either a valid IP address,"
            " an interface name, or an absolute path"
        )
    _check_spice(hv)
    model, domain = hv["security_model"], hv["security_domain"]
    if model == "user" and not domain:
        raise HypervisorError("A security domain (user to run kvm as) must be specified")
    if model in ("none", "pool") and domain:
        raise HypervisorError(
            "Cannot have a security domain when the security model is 'none' or 'pool'"
        )


def _check_spice(hv: Mapping[str, Any]) -> None:
    bind = hv["spice_bind"]
    if not bind:
        for name in _SPICE_ADDITIONAL:
            if hv[name]:
                raise HypervisorError(f"SPICE: {name} requires spice_bind to be set")
        return
    if hv["vnc_bind_address"]:
        raise HypervisorError(
            "Both SPICE and VNC are configured, but only one of them can be used at a given time"
        )
    if is_ip_address(bind):
        version = ipaddress.ip_address(bind).version
        if hv["spice_ip_version"] and hv["spice_ip_version"] != version:
            raise HypervisorError(
                f"SPICE: Got an IPv{version} address ({bind}), but the specified IP"
                f" version is {hv['spice_ip_version']}"
            )
    elif not is_interface(bind):
        raise HypervisorError(
            "SPICE: The spice_bind parameter must be either a valid IP address or interface name"
        )
