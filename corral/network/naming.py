"""Stable tap names."""

from __future__ import annotations

import hashlib

from corral.network.base import IFNAMSIZ


def tap_name_for(instance_name: str, nic_index: int, seq: int = 0) -> str:
    """Tap name for NIC `nic_index` of `instance_name` (at most 15 characters).

    The same arguments always give the same name, so a restarted noded finds
    the taps it made; different instances get different names (8 hex digits of
    the instance name's SHA-1). `seq` distinguishes successive taps of one NIC
    slot (e.g. a hot-removed NIC whose tap still exists while a new one is
    added at the same index). Readable form ``c<hash8>.<index>.<seq>``; when
    that would be too long, ``c<hash14>`` of all three.
    """
    if nic_index < 0 or seq < 0:
        raise ValueError("nic_index and seq must not be negative")
    digest = hashlib.sha1(instance_name.encode()).hexdigest()
    name = f"c{digest[:8]}.{nic_index}.{seq}"
    if len(name) <= IFNAMSIZ:
        return name
    longer = hashlib.sha1(f"{instance_name}\0{nic_index}\0{seq}".encode()).hexdigest()
    return f"c{longer[:14]}"
