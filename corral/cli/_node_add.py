"""``gnt-node add``: joining a node to the cluster (corral's TLS join).

Ganeti bootstraps a node over SSH; corral's master must instead learn which
node daemon it talks to. Either

* ``--node-fingerprint FP`` pins the SHA-256 fingerprint of the node's
  certificate (read on the node with ``corral-noded --fingerprint``),
* ``--join-token TOKEN`` (or a token seeded in /etc/corral/join.token on the
  master, which the master reads itself, so the secret never enters the job
  queue) proves the node knows the secret, or
* the CLI fetches the fingerprint and asks, like the SSH prompt of the
  paper's Figure 2.9; "no" or no terminal aborts with exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
from typing import Any

from corral import constants as C
from corral import opcodes as op
from corral.cli import _util as U
from corral.paths import DEFAULT_PATHS


def fetch_fingerprint(host: str) -> str:
    """SHA-256 fingerprint of the node daemon's certificate on ``host``."""
    join = importlib.import_module("corral.rpc.join")
    return str(join.fetch_fingerprint(host, C.NODED_PORT))


def resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def confirm_fingerprint(host: str, fingerprint: str) -> bool:
    """The SSH-style prompt; only a typed "yes" accepts. No terminal = no."""
    question = (
        f"The authenticity of host '{host} ({resolve(host)})' can't be established.\n"
        f"SHA256 fingerprint is {fingerprint}.\n"
        "Are you sure you want to continue connecting (yes/no)? "
    )
    try:
        tty = open("/dev/tty", "r+")  # noqa: SIM115 - closed below
    except OSError:
        return False
    try:
        while True:
            tty.write(question)
            tty.flush()
            answer = tty.readline()
            if not answer:
                return False
            answer = answer.strip().lower()
            if answer in ("yes", "no"):
                return answer == "yes"
            question = "Please type 'yes' or 'no': "
    finally:
        tty.close()


def _seeded_token() -> bool:
    return os.path.exists(DEFAULT_PATHS.join_token_file)


def add_node(opts: argparse.Namespace, client: Any) -> int:
    node = opts.name
    rows = U.query_rows(client, "node", ["name", "sip", "master"], [node], check=False)
    exists = rows[0][0] if rows else ""
    sip = opts.secondary_ip
    if opts.readd:
        if not exists:
            U.warn(f"Node {node} not in the cluster - please retry without '--readd'")
            return 1
        if rows[0][2]:
            U.warn(f"Node {node} is the master, cannot readd")
            return 1
        sip = sip or rows[0][1]
    elif exists:
        U.warn(f"Node {node} already in the cluster (as {exists}) - please retry with '--readd'")
        return 1
    fingerprint = opts.node_fingerprint
    if not (fingerprint or opts.join_token or _seeded_token()):
        if not opts.readd:
            U.warn(
                "-- WARNING -- \n"
                "Performing this operation is going to replace the node daemon"
                " certificate\n"
                f"on the target machine ({node}) with one issued by this cluster\n"
                "and grant the cluster full control over it\n"
            )
        fingerprint = fetch_fingerprint(node)
        if not confirm_fingerprint(node, fingerprint):
            U.warn("Host key verification failed.")
            return 1
    U.submit_or_wait(
        opts,
        client,
        [
            op.OpNodeAdd(
                node_name=node,
                secondary_ip=sip,
                readd=opts.readd,
                group=opts.nodegroup,
                master_capable=opts.master_capable,
                vm_capable=opts.vm_capable,
                ndparams=opts.ndparams,
                node_fingerprint=fingerprint,
                join_token=opts.join_token,
            )
        ],
    )
    return 0
