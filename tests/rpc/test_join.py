"""Join protocol: token challenge/response both ways, pinned fingerprint, leave."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest

from corral import errors
from corral.node.context import NodeContext
from corral.node.security import fingerprint as cert_fingerprint
from corral.node.security import join_proof, read_revoked
from corral.paths import Paths
from corral.rpc import tls
from corral.rpc.client import ClientTLS, NodeTarget, RpcRunner
from corral.rpc.join import (
    JoinMaterial,
    async_fetch_fingerprint,
    fetch_fingerprint,
    join_node,
    pinned_runner,
)
from corral.rpc.server import NodeServer

from .helpers import cluster_ca, joined_node, serving

NODE = NodeTarget("node2", "127.0.0.1")


def _fresh_node(root: Path, token: str | None) -> Paths:
    paths = Paths.under(root / "node2")
    if token is not None:
        os.makedirs(paths.etc_dir, exist_ok=True)
        Path(paths.join_token_file).write_text(token + "\n")
    return paths


def _material(name: str = "node2") -> tuple[JoinMaterial, int]:
    ca = cluster_ca()
    cert, key, serial = tls.issue_node_cert(ca, name, ["127.0.0.1"])
    return (
        JoinMaterial(
            ca_pem=ca[0],
            cert_pem=cert,
            key_pem=key,
            cluster_name="cluster.project.edu",
            master_name="node1.project.edu",
            ssconf={"master_ip": "192.0.2.10"},
        ),
        serial,
    )


async def _wait_joined(srv: NodeServer) -> None:
    for _ in range(50):
        if srv.joined:
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("server did not switch to joined mode")


def test_unjoined_serves_only_join_calls(tmp_path: Path) -> None:
    paths = _fresh_node(tmp_path, None)

    async def body() -> None:
        async with serving(NodeContext(paths, node_name="node2")) as srv:
            assert not srv.joined
            fp = await async_fetch_fingerprint("127.0.0.1", srv.port)
            assert fp == srv.ctx.serving_fingerprint
            async with pinned_runner(fp, srv.port) as runner:
                res = await runner.call("version", NODE)
                assert res.payload["joined"] is False and res.payload["fingerprint"] == fp
                res = await runner.call("node_volumes", NODE)
                assert res.fail_msg == "Node node2 is not part of a cluster"

    asyncio.run(body())
    # the self-signed certificate is kept: same fingerprint after a restart
    first = Path(f"{paths.etc_dir}/noded-selfsigned.pem").read_text()

    async def again() -> str:
        async with serving(NodeContext(paths, node_name="node2")) as srv:
            return await asyncio.to_thread(fetch_fingerprint, "127.0.0.1", srv.port)

    assert asyncio.run(again()) == tls.fingerprint(first)


def test_token_join_then_mutual_tls(tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    paths = _fresh_node(tmp_path, token)
    master = joined_node(tmp_path, "node1")
    material, serial = _material()

    async def body() -> None:
        async with serving(NodeContext(paths, node_name="node2")) as srv:
            fp = await join_node("127.0.0.1", material, token=token, port=srv.port)
            assert fp == tls.fingerprint(Path(f"{paths.etc_dir}/noded-selfsigned.pem").read_text())
            await _wait_joined(srv)
            async with RpcRunner(ClientTLS.from_paths(master.paths), port=srv.port) as runner:
                res = await runner.call("version", NODE)
                assert res.payload["joined"] is True
                assert res.payload["fingerprint"] == tls.fingerprint(material.cert_pem)
                assert not (await runner.call("node_volumes", NODE)).failed
                # leaving drops back to unjoined mode
                assert not (await runner.call("node_leave", NODE)).failed
            for _ in range(50):
                if not srv.joined:
                    break
                await asyncio.sleep(0.05)
            assert not srv.joined

    asyncio.run(body())
    assert not os.path.exists(paths.node_cert)
    assert not os.path.exists(f"{paths.ssconf_dir}/ssconf_cluster_name")
    assert tls.cert_serial(material.cert_pem) == serial


def test_token_join_installs_material(tmp_path: Path) -> None:
    token = "s3cret-token"
    paths = _fresh_node(tmp_path, token)
    material, _ = _material()

    async def body() -> None:
        async with serving(NodeContext(paths, node_name="node2")) as srv:
            await join_node("127.0.0.1", material, token=token, port=srv.port)
            await _wait_joined(srv)

    asyncio.run(body())
    assert Path(paths.ca_cert).read_text() == material.ca_pem
    assert Path(paths.node_cert).read_text() == material.cert_pem
    assert os.stat(paths.node_key).st_mode & 0o777 == 0o600
    assert not os.path.exists(paths.ca_key)
    ssconf = Path(paths.ssconf_dir)
    assert (ssconf / "ssconf_cluster_name").read_text() == "cluster.project.edu\n"
    assert (ssconf / "ssconf_master_node").read_text() == "node1.project.edu\n"
    assert (ssconf / "ssconf_master_ip").read_text() == "192.0.2.10\n"


def test_wrong_token_refused_by_master(tmp_path: Path) -> None:
    paths = _fresh_node(tmp_path, "node-token")
    material, _ = _material()

    async def body() -> None:
        async with serving(NodeContext(paths, node_name="node2")) as srv:
            with pytest.raises(errors.CertificateError, match="does not know the cluster join"):
                await join_node("127.0.0.1", material, token="master-token", port=srv.port)
            assert not srv.joined

    asyncio.run(body())
    assert not os.path.exists(paths.node_cert)


def test_wrong_token_refused_by_node(tmp_path: Path) -> None:
    """A master that skips checking the node and guesses the token is refused."""
    paths = _fresh_node(tmp_path, "node-token")
    material, _ = _material()

    async def body() -> None:
        async with serving(NodeContext(paths, node_name="node2")) as srv:
            fp = await async_fetch_fingerprint("127.0.0.1", srv.port)
            async with pinned_runner(fp, srv.port) as runner:
                my_nonce = secrets.token_hex(16)
                res = await runner.call("node_join_challenge", NODE, my_nonce)
                node_nonce = res.payload["nonce"]
                args = [material.ca_pem, material.cert_pem, material.key_pem, "c", "m", {}]
                bad = join_proof("master-token", "master", node_nonce, my_nonce, fp)
                res = await runner.call(
                    "node_join", NODE, *args, {"nonce": node_nonce, "proof": bad}
                )
                assert isinstance(res.error, errors.CertificateError)
                assert res.fail_msg == "Join refused: wrong join token"
                # no proof at all
                res = await runner.call("node_join", NODE, *args)
                assert res.fail_msg == "This node requires the cluster join token"
                # the right proof works, but only once per nonce
                res = await runner.call("node_join_challenge", NODE, my_nonce)
                node_nonce = res.payload["nonce"]
                good = join_proof("node-token", "master", node_nonce, my_nonce, fp)
                auth = {"nonce": node_nonce, "proof": good}
                assert not (await runner.call("node_join", NODE, *args, auth)).failed
            await _wait_joined(srv)

    asyncio.run(body())


def test_pinned_fingerprint_join(tmp_path: Path) -> None:
    paths = _fresh_node(tmp_path, None)  # no token on the node
    material, _ = _material()

    async def body() -> None:
        async with serving(NodeContext(paths, node_name="node2")) as srv:
            fp = await asyncio.to_thread(fetch_fingerprint, "127.0.0.1", srv.port)
            wrong = "AA:" * 31 + "AA"
            with pytest.raises(errors.CertificateError, match="not the expected"):
                await join_node("127.0.0.1", material, fingerprint=wrong, port=srv.port)
            with pytest.raises(errors.CertificateError, match="has no join token"):
                await join_node("127.0.0.1", material, token="x", port=srv.port)
            # the node trusts no cluster CA yet: nobody may take it
            with pytest.raises(errors.CertificateError, match="trusts no cluster CA"):
                await join_node("127.0.0.1", material, fingerprint=fp, port=srv.port)
            # a CA the node's admin did not list is refused too
            Path(paths.etc_dir, "trusted-ca").write_text("AB:" * 31 + "AB\n")
            with pytest.raises(errors.CertificateError, match="does not trust that cluster"):
                await join_node("127.0.0.1", material, fingerprint=fp, port=srv.port)
            # a cert that the trusted CA did not sign is refused
            other, _ = _material()
            Path(paths.etc_dir, "trusted-ca").write_text(cert_fingerprint(material.ca_pem) + "\n")
            forged = JoinMaterial(
                ca_pem=material.ca_pem,
                cert_pem=other.cert_pem,
                key_pem=other.key_pem,
                cluster_name="x",
                master_name="y",
            )
            if other.ca_pem != material.ca_pem:
                with pytest.raises(errors.CertificateError, match="not signed by the cluster"):
                    await join_node("127.0.0.1", forged, fingerprint=fp, port=srv.port)
            assert not srv.joined
            # lower case without colons is accepted too
            pinned = fp.replace(":", "").lower()
            assert await join_node("127.0.0.1", material, fingerprint=pinned, port=srv.port) == fp
            await _wait_joined(srv)

    asyncio.run(body())
    assert Path(paths.node_cert).read_text() == material.cert_pem


def test_joined_node_refuses_anonymous_rejoin(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node2")
    material, _ = _material()

    async def body() -> None:
        async with serving(NodeContext(node.paths, node_name="node2")) as srv:
            fp = await async_fetch_fingerprint("127.0.0.1", srv.port)
            with pytest.raises(errors.CertificateError, match="Client certificate required"):
                await join_node("127.0.0.1", material, fingerprint=fp, port=srv.port)

    asyncio.run(body())
    assert Path(node.paths.node_cert).read_text() == node.cert


def test_fetch_fingerprint_unreachable() -> None:
    with pytest.raises(errors.NodeUnreachable):
        fetch_fingerprint("127.0.0.1", 1, timeout=2)


def test_revoked_list_roundtrip(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    assert read_revoked(paths) == set()
    tls.write_revoked(paths, [3, 1, 3])
    assert read_revoked(paths) == {1, 3}
    Path(paths.crl_file).write_text("garbage")
    assert read_revoked(paths) == set()
