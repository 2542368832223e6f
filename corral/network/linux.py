"""Real NIC plumbing: pyroute2 netlink plus the /dev/net/tun ioctls.

Everything happens in the network namespace of the calling process (the
testkit runs each node's noded in its own namespace). Queries go through
netlink, not /sys/class/net, because sysfs shows the namespace of whoever
mounted it.

Taps are made persistent with ``TUNSETPERSIST`` so they outlive this process;
QEMU later opens them by name (``ifname=...,script=no``). Their MAC is set to
``fe:ff:ff:ff:ff:ff`` as Ganeti's kvm-ifup does, so a bridge never adopts a
VM's address as its own.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from corral.errors import NetworkError
from corral.network.base import IFNAMSIZ, NetworkDriver

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
TAP_MAC = "fe:ff:ff:ff:ff:ff"
#: Idle netlink sockets kept per namespace for reuse
POOL_IDLE_MAX = 4


def _close_pool(pool: dict[int, list[Any]]) -> None:
    """Close the pooled sockets (driver collected, or interpreter exit)."""
    for sockets in pool.values():
        while sockets:
            sockets.pop().close()


def _check_name(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name or any(c.isspace() for c in name):
        raise NetworkError(f"Invalid interface name '{name}'")


class LinuxNetwork(NetworkDriver):
    """Bridges and taps of the current network namespace."""

    NAME = "linux"

    def __init__(self) -> None:
        # idle netlink sockets per network namespace (inode), reused between
        # operations: opening one costs about as much as a query. noded runs
        # RPCs in a thread pool; a socket serves one thread at a time.
        self._pool: dict[int, list[Any]] = {}
        self._pool_lock = threading.Lock()
        weakref.finalize(self, _close_pool, self._pool)
        # (netns inode, bridge name) -> ifindex of the bridge last seen with that name
        self._bridges: dict[tuple[int, str], int] = {}

    @staticmethod
    def _netns() -> int:
        try:
            return os.stat("/proc/thread-self/ns/net").st_ino
        except OSError:
            return 0

    @staticmethod
    def _ifindex(name: str) -> int | None:
        """The index of interface `name` (an ioctl: no netlink message to decode), or None."""
        try:
            return socket.if_nametoindex(name)
        except (OSError, ValueError):
            return None

    def _bridge_index(self, name: str) -> int | None:
        """The index of bridge `name`, None if there is no such bridge.

        Decoding a netlink link message is the costly part of a query, and a
        VM start asks about the same bridge every time; an interface's kind never
        changes and indexes are not reused, so a bridge recognised once is known
        by its index (checked by name on every call).
        """
        index = self._ifindex(name)
        if index is None:
            return None
        key = (self._netns(), name)
        if self._bridges.get(key) == index:
            return index
        with self._ipr() as ipr:
            msg = self._link(ipr, name)
        if msg is None or self._kind(msg) != "bridge":
            return None
        index = int(msg["index"])
        self._bridges[key] = index
        return index

    @contextmanager
    def _ipr(self) -> Iterator[Any]:
        """An IPRoute socket in the calling thread's current network namespace.

        Taken from the pool (or opened) for the duration of the block, then
        returned to it; after any error it is closed instead, so a broken
        socket is never reused. At most `POOL_IDLE_MAX` idle sockets are kept.
        """
        netns = self._netns()
        with self._pool_lock:
            idle = self._pool.get(netns)
            ipr = idle.pop() if idle else None
        if ipr is None:
            from pyroute2 import IPRoute

            ipr = IPRoute()
        try:
            yield ipr
        except BaseException:
            ipr.close()
            raise
        with self._pool_lock:
            idle = self._pool.setdefault(netns, [])
            if len(idle) < POOL_IDLE_MAX:
                idle.append(ipr)
                ipr = None
        if ipr is not None:
            ipr.close()

    def _link(self, ipr: Any, name: str) -> Any | None:
        """The netlink message for interface `name`, or None."""
        try:
            found = ipr.link("get", ifname=name)
        except Exception as err:  # pyroute2 raises NetlinkError(ENODEV)
            if getattr(err, "code", None) in (errno.ENODEV, errno.ENOENT):
                return None
            raise NetworkError(f"Cannot query interface {name}: {err}") from err
        return found[0] if found else None

    @staticmethod
    def _kind(msg: Any) -> str | None:
        info = msg.get_attr("IFLA_LINKINFO")
        if info is None:
            return None
        kind = info.get_attr("IFLA_INFO_KIND")
        return str(kind) if kind is not None else None

    def _index(self, ipr: Any, name: str) -> int:
        msg = self._link(ipr, name)
        if msg is None:
            raise NetworkError(f"Interface {name} does not exist")
        return int(msg["index"])

    # -- queries ---------------------------------------------------------------------
    def bridge_exists(self, name: str) -> bool:
        return self._bridge_index(name) is not None

    def link_exists(self, name: str) -> bool:
        with self._ipr() as ipr:
            return self._link(ipr, name) is not None

    def master_of(self, name: str) -> str | None:
        with self._ipr() as ipr:
            msg = self._link(ipr, name)
            if msg is None:
                return None
            master = msg.get_attr("IFLA_MASTER")
            if not master:
                return None
            found = ipr.link("get", index=master)
            return str(found[0].get_attr("IFLA_IFNAME")) if found else None

    def list_taps(self) -> list[str]:
        with self._ipr() as ipr:
            return sorted(
                str(msg.get_attr("IFLA_IFNAME"))
                for msg in ipr.get_links()
                if self._kind(msg) == "tun"
            )

    # -- bridges ---------------------------------------------------------------------
    def create_bridge(self, name: str) -> None:
        _check_name(name)
        with self._ipr() as ipr:
            msg = self._link(ipr, name)
            if msg is not None:
                if self._kind(msg) != "bridge":
                    raise NetworkError(f"Interface {name} exists and is not a bridge")
                return
            try:
                ipr.link("add", ifname=name, kind="bridge")
                ipr.link("set", index=self._index(ipr, name), state="up")
            except NetworkError:
                raise
            except Exception as err:
                raise NetworkError(f"Cannot create bridge {name}: {err}") from err

    def delete_bridge(self, name: str) -> None:
        with self._ipr() as ipr:
            msg = self._link(ipr, name)
            if msg is None:
                return
            if self._kind(msg) != "bridge":
                raise NetworkError(f"Interface {name} is not a bridge")
            try:
                ipr.link("del", index=int(msg["index"]))
            except Exception as err:
                raise NetworkError(f"Cannot delete bridge {name}: {err}") from err

    # -- taps ------------------------------------------------------------------------
    def create_tap(self, name: str) -> None:
        _check_name(name)
        index = self._ifindex(name)
        with self._ipr() as ipr:
            if index is not None:  # exists already: only a tap may be reused
                msg = self._link(ipr, name)
                if msg is not None and self._kind(msg) != "tun":
                    raise NetworkError(f"Interface {name} exists and is not a tap")
                if msg is None:
                    index = None
            if index is None:
                self._make_persistent_tap(name)
            try:
                if index is None:
                    index = self._index(ipr, name)
                ipr.link("set", index=index, address=TAP_MAC, state="up")
            except NetworkError:
                raise
            except Exception as err:
                raise NetworkError(f"Cannot set up tap {name}: {err}") from err

    @staticmethod
    def _make_persistent_tap(name: str) -> None:
        try:
            fd = os.open(TUN_DEVICE, os.O_RDWR)
        except OSError as err:
            raise NetworkError(f"Cannot open {TUN_DEVICE}: {err.strerror}") from err
        try:
            ifr = struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        except OSError as err:
            raise NetworkError(f"Cannot create tap {name}: {err.strerror}") from err
        finally:
            os.close(fd)

    def delete_tap(self, name: str) -> None:
        with self._ipr() as ipr:
            msg = self._link(ipr, name)
            if msg is None:
                return
            if self._kind(msg) != "tun":
                raise NetworkError(f"Interface {name} is not a tap")
            try:
                ipr.link("del", index=int(msg["index"]))
            except Exception as err:
                raise NetworkError(f"Cannot delete tap {name}: {err}") from err

    def attach_to_bridge(self, tap: str, bridge: str) -> None:
        br_index = self._bridge_index(bridge)
        if br_index is None:
            raise NetworkError(f"Bridge {bridge} does not exist")
        index = self._ifindex(tap)
        if index is None:
            raise NetworkError(f"Interface {tap} does not exist")
        with self._ipr() as ipr:
            try:
                ipr.link("set", index=index, master=br_index, state="up")
            except Exception as err:
                raise NetworkError(f"Cannot attach {tap} to bridge {bridge}: {err}") from err

    def detach(self, tap: str) -> None:
        with self._ipr() as ipr:
            msg = self._link(ipr, tap)
            if msg is None:
                raise NetworkError(f"Interface {tap} does not exist")
            if not msg.get_attr("IFLA_MASTER"):
                return
            try:
                ipr.link("set", index=int(msg["index"]), master=0)
            except Exception as err:
                raise NetworkError(f"Cannot detach {tap}: {err}") from err
