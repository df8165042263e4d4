"""Several nodes serving one deployment on a dev chain: each with its own DEV enclave (registered)
and its own account, all sharing one PostgreSQL journal. For tests, benchmarks and trying failover."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..chain import ANVIL_KEYS, Deployment, TxSender, connect
from ..errors import ToolchainError
from ..node.enclave_client import EnclaveClient
from . import devnet

# Dev accounts that submit, one per node: the node's own (#1), then two no other role uses.
NODE_ACCOUNTS = (devnet.NODE, 8, 9)


@dataclass
class ClusterNode:
    """One node of a cluster: its enclave, its `coprocessor node` process and where it logs."""

    index: int
    account: str
    enclave_process: subprocess.Popen[bytes]
    enclave: EnclaveClient
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the node's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_enclaves(rpc_url: str, deployment: Deployment, folder: Path, count: int, template_dirs: Sequence[Path]) -> list[ClusterNode]:
    """Starts and registers `count` DEV enclaves (one dev PKI: the attestor trusts its root once); the first
    makes the cluster's keys and the others join it."""
    if not 1 <= count <= len(NODE_ACCOUNTS):
        raise ToolchainError(f"a dev cluster has 1 to {len(NODE_ACCOUNTS)} nodes (one dev account each)")
    w3 = connect(rpc_url)
    payee = TxSender(w3, ANVIL_KEYS[devnet.PAYEE]).address
    nodes: list[ClusterNode] = []
    try:
        for index in range(count):
            process, enclave = devnet.start_enclave(
                deployment,
                payee,
                template_dirs,
                folder / "dev-pki",
                folder / f"enclave-{index}.token",
                folder / f"enclave-{index}.log",
                chain_rpc=rpc_url,
            )
            account = TxSender(w3, ANVIL_KEYS[NODE_ACCOUNTS[index]]).address
            nodes.append(ClusterNode(index, account, process, enclave, folder / f"node-{index}.log"))
            devnet.register_enclave(rpc_url, deployment, enclave, folder / "dev-pki")
            if index == 0:
                enclave.keys_genesis()  # the cluster's keys, made in its first enclave
            else:
                enclave.join(nodes[0].enclave)  # checked by the first enclave's attestation code, sealed to this one
    except BaseException:
        stop_cluster(nodes)
        raise
    return nodes


def start_node(
    node: ClusterNode, rpc_url: str, deployment_file: Path, folder: Path, journal: str, lease: float, extra_args: Sequence[str] = ()
) -> None:
    """Starts `coprocessor node` for `node` as its own process, logging to its log file."""
    command = [
        sys.executable,
        "-m",
        "coprocessor",
        "node",
        "--rpc",
        rpc_url,
        "--deployment",
        str(deployment_file),
        "--enclave",
        node.enclave.url,
        "--enclave-token-file",
        str(folder / f"enclave-{node.index}.token"),
        "--journal",
        journal,
        "--lease",
        str(lease),
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPROCESSOR_")}
    env["COPROCESSOR_NODE_KEY"] = ANVIL_KEYS[NODE_ACCOUNTS[node.index]]
    with open(node.log, "ab") as log:
        node.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env, preexec_fn=devnet.die_with_parent)


def wait_serving(nodes: Sequence[ClusterNode], timeout: float = 60.0) -> None:
    """Waits until every node logged that it serves; raises with a log's tail if one exits first."""
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting and time.monotonic() < deadline:
        for node in list(waiting):
            if node.process is not None and node.process.poll() is not None:
                raise ToolchainError(f"node {node.index} exited with code {node.process.returncode}:\n{node.log_tail()}")
            if node.log.exists() and "node serving" in node.log.read_text(errors="replace"):
                waiting.remove(node)
        time.sleep(0.1)
    if waiting:
        raise ToolchainError(f"node {waiting[0].index} did not start within {timeout:g} s:\n{waiting[0].log_tail()}")


def stop_cluster(nodes: Sequence[ClusterNode]) -> None:
    """Stops every node, then every enclave."""
    for node in nodes:
        devnet.stop(node.process, timeout=10)
    for node in nodes:
        devnet.stop(node.enclave_process)
