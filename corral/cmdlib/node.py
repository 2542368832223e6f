"""Node LUs: add (join over mutual TLS), remove (revokes the certificate), modify.

Joining needs no root SSH: the master signs a certificate for the node with
the cluster CA and installs it through the node's own noded, after both sides
authenticated each other with the join token or the fingerprint the admin
confirmed (see `corral.rpc.join`).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from corral import objects, opcodes
from corral.cmdlib.base import HTYPE_NODE, LogicalUnit
from corral.cmdlib.registry import lu_for
from corral.errors import (
    ECODE_EXISTS,
    ECODE_INVAL,
    ECODE_NOENT,
    ECODE_RESOLVER,
    ECODE_STATE,
    CertificateError,
    GenericError,
    OpExecError,
    OpPrereqError,
)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read()


@lu_for(opcodes.OpNodeAdd)
class LUNodeAdd(LogicalUnit):
    HPATH = "node-add"
    HTYPE = HTYPE_NODE
    op: opcodes.OpNodeAdd

    async def _resolve(self) -> None:
        """The node's name and addresses (DNS runs in a thread: never on the loop)."""
        try:
            fqdn, _aliases, ips = await asyncio.to_thread(
                socket.gethostbyname_ex, self.op.node_name
            )
        except OSError as exc:
            raise OpPrereqError(
                f"Host name {self.op.node_name} could not be resolved", ECODE_RESOLVER
            ) from exc
        self.node_name = fqdn
        self.primary_ip = self.op.primary_ip or ips[0]
        self.secondary_ip = self.op.secondary_ip or self.primary_ip

    async def check_prereq(self) -> None:
        await self._resolve()
        cfg = self.cfg
        existing = cfg.get_node_by_name(self.node_name)
        if existing is not None and not self.op.readd:
            raise OpPrereqError(
                f"Node {self.node_name} is already in the configuration", ECODE_EXISTS
            )
        if existing is None and self.op.readd:
            raise OpPrereqError(f"Node {self.node_name} is not in the configuration", ECODE_NOENT)
        for node in cfg.all_nodes():
            if node.name == self.node_name:
                continue
            if self.primary_ip in (node.primary_ip, node.secondary_ip):
                raise OpPrereqError(
                    f"New node ip address(es) conflict with existing node {node.name}",
                    ECODE_INVAL,
                )
        self.group_uuid = cfg.lookup_group(self.op.group)
        paths = self.ctx.paths
        if not (os.path.exists(paths.ca_cert) and os.path.exists(paths.ca_key)):
            raise OpPrereqError(
                "The cluster CA is not available on this node; cannot sign node certificates",
                "environment_error",
            )
        self.token = self.op.join_token
        if not self.token and os.path.exists(paths.join_token_file):
            self.token = _read(paths.join_token_file).strip() or None
        if not self.token and not self.op.node_fingerprint:
            raise OpPrereqError(
                "Joining a node needs its certificate fingerprint (--node-fingerprint) or"
                " the cluster join token (--join-token)",
                ECODE_INVAL,
            )
        candidates = [n for n in cfg.master_candidates() if n.name != self.node_name]
        self.become_candidate = (
            self.op.master_capable is not False
            and len(candidates) < cfg.cluster.candidate_pool_size
        )

    async def exec(self) -> Any:
        from corral.rpc import tls
        from corral.rpc.join import JoinMaterial, join_node

        cfg = self.cfg
        paths = self.ctx.paths
        ca = (
            await asyncio.to_thread(_read, paths.ca_cert),
            await asyncio.to_thread(_read, paths.ca_key),
        )
        cert, key, serial = tls.issue_node_cert(ca, self.node_name, [self.primary_ip])
        if self.become_candidate:
            self.log_info("Node will be a master candidate")
        material = JoinMaterial(
            ca_pem=ca[0],
            cert_pem=cert,
            key_pem=key,
            cluster_name=cfg.cluster.cluster_name,
            master_name=cfg.master_node().name,
            ca_key_pem=ca[1] if self.become_candidate else None,
        )
        try:
            if not await self._rejoin(material):
                await join_node(
                    self.primary_ip,
                    material,
                    token=self.token,
                    fingerprint=self.op.node_fingerprint,
                    node_name=self.node_name,
                )
        except CertificateError as exc:
            raise OpExecError(f"Cannot join node {self.node_name}: {exc}") from exc
        except GenericError as exc:
            raise OpExecError(f"Cannot join node {self.node_name}: {exc}") from exc

        async def leave() -> None:
            """Undo a join that did not complete: the node forgets the cluster
            and, in case it cannot be told, its new certificate is revoked."""
            from corral.rpc.client import NodeTarget

            if cfg.get_node_by_name(self.node_name) is None or not self.op.readd:
                await self.rpc.call("node_leave", NodeTarget(self.node_name, self.primary_ip))
            cluster = cfg.cluster.copy()
            if serial not in cluster.revoked_certs:
                cluster.revoked_certs.append(serial)
                await cfg.update_cluster(cluster)
            targets = [self.ctx.node_target(n.uuid) for n in cfg.all_nodes() if not n.offline]
            await self.rpc.call_multi("node_set_revoked", targets, list(cluster.revoked_certs))

        self.ctx.on_rollback(leave)
        from corral.node.security import fingerprint as cert_fp

        fp = cert_fp(tls_der(cert))
        await self._wait_joined(fp)
        existing = cfg.get_node_by_name(self.node_name)
        if existing is not None:
            node = existing.copy()
            node.primary_ip, node.secondary_ip = self.primary_ip, self.secondary_ip
            node.cert_fingerprint, node.cert_serial = fp, serial
            node.offline = False
            node.master_candidate = self.become_candidate
            await cfg.update_node(node)
        else:
            node = objects.Node(
                name=self.node_name,
                primary_ip=self.primary_ip,
                secondary_ip=self.secondary_ip,
                group=self.group_uuid,
                master_candidate=self.become_candidate,
                master_capable=self.op.master_capable is not False,
                vm_capable=self.op.vm_capable is not False,
                ndparams=dict(self.op.ndparams or {}),
                cert_fingerprint=fp,
                cert_serial=serial,
            )
            await cfg.add_node(node)
        new_target = self.ctx.node_target(self.node_name)
        if cfg.cluster.revoked_certs:
            await self.rpc.call("node_set_revoked", new_target, list(cfg.cluster.revoked_certs))
        return None

    async def _rejoin(self, material: Any) -> bool:
        """``--readd`` of a node still in the cluster: it only accepts `node_join`
        from the cluster's certificate, so send it over the cluster's RPC.
        False when the node does not answer as a cluster member (then it is
        joined afresh)."""
        from corral.rpc.client import NodeTarget

        if not self.op.readd:
            return False
        target = NodeTarget(name=self.node_name, ip=self.primary_ip)
        res = await self.rpc.call("version", target)
        if res.failed or not (res.payload or {}).get("joined"):
            return False
        res = await self.rpc.call(
            "node_join",
            target,
            material.ca_pem,
            material.cert_pem,
            material.key_pem,
            material.cluster_name,
            material.master_name,
            material.ssconf,
            None,
            material.ca_key_pem,
        )
        res.raise_on_fail()
        return True

    async def _wait_joined(self, fp: str, timeout: float = 10.0) -> None:
        """The node switches to its cluster certificate (fingerprint `fp`) just
        after answering the join; wait until it serves it, so the first pushes
        (config, job queue) to it do not meet its old self-signed certificate.
        Its certificate files, hence ``joined``, exist before the switch."""
        from corral.rpc.client import NodeTarget

        target = NodeTarget(name=self.node_name, ip=self.primary_ip)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            res = await self.rpc.call("version", target)
            payload = res.payload or {}
            if not res.failed and payload.get("joined") and payload.get("fingerprint") == fp:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise OpExecError(
                    f"Node {self.node_name} did not switch to the cluster certificate:"
                    f" {res.fail_msg or 'not joined'}"
                )
            await asyncio.sleep(0.05)


def tls_der(cert_pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(
        serialization.Encoding.DER
    )


@lu_for(opcodes.OpNodeRemove)
class LUNodeRemove(LogicalUnit):
    HPATH = "node-remove"
    HTYPE = HTYPE_NODE
    op: opcodes.OpNodeRemove

    def expand_names(self) -> None:
        self.node_uuid, self.node_name = self.cfg.expand_node_name(self.op.node_name)

    async def check_prereq(self) -> None:
        cfg = self.cfg
        if self.node_uuid == cfg.cluster.master_node:
            raise OpPrereqError(
                "Node is the master node, failover to another node is required", ECODE_INVAL
            )
        for inst in cfg.all_instances():
            if self.node_uuid in inst.all_nodes:
                raise OpPrereqError(
                    f"Instance {inst.name} is still running on the node, please remove first",
                    ECODE_INVAL,
                )

    async def exec(self) -> Any:
        cfg = self.cfg
        node = cfg.get_node(self.node_uuid)
        assert node is not None
        target = self.ctx.node_target(self.node_uuid)
        if not target.offline:
            res = await self.rpc.call("node_leave", target)
            if res.failed:
                self.log_warning(f"Node {node.name} could not forget the cluster: {res.fail_msg}")
            else:
                await self._wait_left(node)
        cluster = cfg.cluster
        if node.cert_serial and node.cert_serial not in cluster.revoked_certs:
            cluster.revoked_certs.append(node.cert_serial)
        await cfg.remove_node(self.node_uuid)
        await cfg.update_cluster(cluster)
        targets = [self.ctx.node_target(n.uuid) for n in cfg.all_nodes() if not n.offline]
        results = await self.rpc.call_multi(
            "node_set_revoked", targets, list(cluster.revoked_certs)
        )
        for name, res in results.items():
            if res.failed:
                self.log_warning(f"Could not update the revocation list on {name}: {res.fail_msg}")
        return None

    async def _wait_left(self, node: objects.Node, timeout: float = 5.0) -> None:
        """The node drops its cluster certificate just after answering
        `node_leave`; wait until it no longer serves it, so an immediate
        ``gnt-node add`` of it does not pin the certificate being dropped."""
        target = self.ctx.node_target(node.uuid)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            res = await self.rpc.call("version", target)
            if res.failed or (res.payload or {}).get("fingerprint") != node.cert_fingerprint:
                return
            await asyncio.sleep(0.05)


def _tristate(value: bool | None) -> str:
    return str(value)


@lu_for(opcodes.OpNodeSetParams)
class LUNodeSetParams(LogicalUnit):
    HPATH = "node-modify"
    HTYPE = HTYPE_NODE
    op: opcodes.OpNodeSetParams

    def check_arguments(self) -> None:
        op = self.op
        flags = [op.master_candidate, op.offline, op.drained]
        if sum(1 for f in flags if f) > 1:
            raise OpPrereqError(
                "Can't set the node into more than one state at the same time", ECODE_INVAL
            )
        if all(
            v is None
            for v in (
                *flags,
                op.master_capable,
                op.vm_capable,
                op.secondary_ip,
                op.ndparams,
                op.powered,
            )
        ):
            raise OpPrereqError("Please pass at least one modification", ECODE_INVAL)

    def expand_names(self) -> None:
        self.node_uuid, self.node_name = self.cfg.expand_node_name(self.op.node_name)

    async def check_prereq(self) -> None:
        cfg = self.cfg
        op = self.op
        node = cfg.get_node(self.node_uuid)
        assert node is not None
        is_master = self.node_uuid == cfg.cluster.master_node
        if cfg.filled_ndparams(node).get("oob_program"):
            # powered off through its out-of-band program (e.g. fenced by the
            # automatic failover): power it on first, or say it is on (--node-powered)
            if op.offline is False and not (node.powered or op.powered):
                raise OpPrereqError(
                    f"Node {node.name} needs to be turned on before its offline status"
                    " can be reset",
                    ECODE_STATE,
                )
        elif op.powered is not None:
            raise OpPrereqError(
                f"Unable to change powered state for node {node.name} as it does not"
                " support out-of-band handling",
                ECODE_STATE,
            )
        if is_master and (op.master_candidate is False or op.offline or op.drained):
            raise OpPrereqError(
                "The master role can be changed only via master-failover", ECODE_INVAL
            )
        if op.master_candidate is False and not op.auto_promote and not op.force:
            remaining = [n for n in cfg.master_candidates() if n.uuid != self.node_uuid]
            if len(remaining) < min(cfg.cluster.candidate_pool_size, len(cfg.nodes) - 1):
                self.log_warning(
                    f"Demoting {node.name} leaves fewer master candidates than the pool size"
                )
        if op.offline is True:
            for inst in cfg.all_instances():
                if (
                    inst.primary_node == self.node_uuid
                    and inst.admin_state == "up"
                    and not op.force
                ):
                    raise OpPrereqError(
                        f"Instance {inst.name} is marked up on node {node.name}; stop or"
                        " fail it over first (or use --force)",
                        ECODE_STATE,
                    )

    def _self_promotes(self, old: objects.Node, new: objects.Node) -> bool:
        """Ganeti's _DecideSelfPromotion: a node leaving the drained or offline
        state (or becoming master capable) becomes a master candidate again
        when the others fall short of the candidate pool."""
        op = self.op
        leaving = (
            (op.drained is False and old.drained)
            or (op.offline is False and old.offline)
            or (op.master_capable is True and not old.master_capable)
        )
        if not leaving or op.master_candidate is not None:
            return False
        if new.master_candidate or new.offline or new.drained or not new.master_capable:
            return False
        others = [n for n in self.cfg.all_nodes() if n.uuid != old.uuid]
        now = sum(1 for n in others if n.master_candidate)
        capable = sum(1 for n in others if n.master_capable and not (n.offline or n.drained))
        should = min(capable + 1, self.cfg.cluster.candidate_pool_size)
        return now < should

    async def exec(self) -> Any:
        cfg = self.cfg
        op = self.op
        node = cfg.get_node(self.node_uuid)
        assert node is not None
        new = node.copy()
        changes: list[list[str]] = []
        if op.offline is not None and op.offline != node.offline:
            new.offline = op.offline
            changes.append(["offline", _tristate(op.offline)])
            if op.offline:
                if new.master_candidate:
                    new.master_candidate = False
                    changes.append(["master_candidate", "auto-demotion due to offline"])
                if new.drained:
                    new.drained = False
                    changes.append(["drained", "clear drained status due to offline"])
        if op.drained is not None and op.drained != node.drained:
            new.drained = op.drained
            changes.append(["drained", _tristate(op.drained)])
            if op.drained and new.master_candidate:
                new.master_candidate = False
                changes.append(["master_candidate", "auto-demotion due to drain"])
        if op.master_candidate is not None and op.master_candidate != node.master_candidate:
            if op.master_candidate and not node.master_capable:
                raise OpPrereqError(f"Node {node.name} is not master capable", ECODE_STATE)
            new.master_candidate = op.master_candidate
            changes.append(["master_candidate", _tristate(op.master_candidate)])
            if op.master_candidate:
                new.offline = False
                new.drained = False
        if op.master_capable is not None:
            new.master_capable = op.master_capable
            changes.append(["master_capable", _tristate(op.master_capable)])
        if self._self_promotes(node, new):
            self.log_info("Auto-promoting node to master candidate")
            new.master_candidate = True
            changes.append(["master_candidate", "True"])
        if op.vm_capable is not None:
            new.vm_capable = op.vm_capable
            changes.append(["vm_capable", _tristate(op.vm_capable)])
        if op.secondary_ip is not None:
            new.secondary_ip = op.secondary_ip
            changes.append(["secondary_ip", op.secondary_ip])
        if op.ndparams:
            new.ndparams.update(op.ndparams)
            changes.append(["ndparams", str(op.ndparams)])
        if op.powered is not None:
            new.powered = op.powered
            changes.append(["powered", _tristate(op.powered)])
        if new.master_candidate and not node.master_candidate:
            await self._give_ca_key(new)
        await cfg.update_node(new)
        return changes

    async def _give_ca_key(self, node: objects.Node) -> None:
        """A new master candidate must be able to sign node certificates after a
        master-failover: give it the CA key (candidates added as such get it at join)."""
        import base64

        path = self.ctx.paths.ca_key
        try:
            data = await asyncio.to_thread(_read, path)
        except OSError as err:
            self.log_warning(f"Cannot read the CA key to give it to {node.name}: {err}")
            return
        from corral.rpc.client import NodeTarget

        # the node may be coming back online in this very operation: address it
        # directly, not through its (still offline) config entry
        res = await self.rpc.call(
            "upload_file",
            NodeTarget(node.name, node.primary_ip),
            path,
            base64.b64encode(data.encode()).decode(),
            0o600,
        )
        if res.failed:
            self.log_warning(
                f"Could not give the cluster CA key to the new candidate {node.name}"
                f" ({res.fail_msg}); it will not be able to add nodes as master"
            )
