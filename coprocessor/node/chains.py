"""Several chains from one node: the chains file, and the process that serves every chain in it.

Each chain gets a `Node` of its own (its RPC, journal partition, cursor, nonce manager, leases and
metrics, each labelled with the chain), all sharing one enclave whose key is registered on every
chain. They share nothing else, so a chain whose RPC is down delays no other (docs/chains.md).
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..chain import Deployment
from ..config import NodeConfig
from ..errors import ManifestError
from .pipeline import Node

log = logging.getLogger(__name__)

_CHAIN_KEYS = {"name", "rpc", "deployment", "confirmations", "reorg_depth", "ws_url"}


@dataclass(frozen=True)
class ChainConfig:
    """One chain a node serves: where to reach it, what is deployed there, and how deep its reorgs go."""

    name: str
    rpc: str
    deployment: Deployment
    confirmations: int | None = None  # None: the node's --confirmations
    reorg_depth: int | None = None  # None: the node's --reorg-depth
    ws_url: str | None = ""  # "": derived from `rpc`; None: poll only

    @property
    def chain_id(self) -> int:
        """The chain's id, as the deployment record says (checked against the RPC at start)."""
        return self.deployment.chain_id

    def node_config(self, base: NodeConfig) -> NodeConfig:
        """The node's options with this chain's own settings over them."""
        own = {"confirmations": self.confirmations, "reorg_depth": self.reorg_depth}
        return replace(base, ws_url=self.ws_url, **{k: v for k, v in own.items() if v is not None})


def load_chains(path: Path | str) -> list[ChainConfig]:
    """Reads a chains file (TOML): one `[[chains]]` table per chain, deployment paths relative to the file.

    ```toml
    [[chains]]
    name = "sepolia"
    rpc = "https://..."
    deployment = "sepolia/deployment.json"
    confirmations = 2        # optional: the node's --confirmations
    reorg_depth = 64         # optional: the node's --reorg-depth
    ```
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the chains file ({exc})") from None
    tables = data.get("chains")
    if not isinstance(tables, list) or not tables:
        raise ManifestError(f"{path}: list each chain in a [[chains]] table (name, rpc, deployment)")
    chains = []
    for i, table in enumerate(tables):
        where = f"{path}: chain {i + 1}"
        unknown = set(table) - _CHAIN_KEYS
        if unknown:
            raise ManifestError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_CHAIN_KEYS)}")
        if not isinstance(table.get("rpc"), str) or not isinstance(table.get("deployment"), str):
            raise ManifestError(f"{where}: `rpc` and `deployment` (a deployment record's path) are required")
        for key in ("confirmations", "reorg_depth"):
            if key in table and (not isinstance(table[key], int) or table[key] < 0):
                raise ManifestError(f"{where}: `{key}` must be a whole number of blocks")
        deployment = Deployment.load(path.parent / table["deployment"])
        chains.append(
            ChainConfig(
                str(table.get("name") or deployment.chain_id),
                table["rpc"],
                deployment,
                table.get("confirmations"),
                table.get("reorg_depth"),
                table.get("ws_url", ""),
            )
        )
    ids = [c.chain_id for c in chains]
    if len(set(ids)) != len(ids):
        raise ManifestError(f"{path}: each chain once (chain ids {ids}): one Coprocessor per chain")
    return chains


def partition_for(chain_id: int, home_chain_id: int) -> str | None:
    """A chain's journal partition: none for the enclave's home chain (so `status` and `secrets put` find it
    as they do for one chain), `chain_<id>` for the others."""
    return None if chain_id == home_chain_id else partition_name(chain_id)


def partition_name(chain_id: int) -> str:
    """The journal partition of a chain other than the enclave's home: a schema, or a file beside the journal."""
    return f"chain_{chain_id}"


class _ChainLabelled(Collector):
    """Every node's metrics in one exposition, each sample labelled with its chain."""

    def __init__(self, registries: Mapping[str, CollectorRegistry]) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for chain, registry in self.registries.items():
            for family in registry.collect():
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                into.samples += [s._replace(labels={"chain": chain, **s.labels}) for s in family.samples]
        yield from merged.values()


class MultiChainNode:
    """Serves every chain of a chains file from one process: a `Node` per chain, each in its own threads."""

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self.nodes = dict(nodes)  # chain name -> its node
        self._stop = threading.Event()

    def run(self) -> None:
        """Serves until `stop()`, or until one chain's node stops on its own (its lease lost, say): then all stop,
        so a supervisor restarts the process whole."""
        threads = [
            threading.Thread(target=self._serve, args=(name, node), name=f"chain-{name}", daemon=True) for name, node in self.nodes.items()
        ]
        for thread in threads:
            thread.start()
        self._stop.wait()
        for node in self.nodes.values():
            node.stop()
        for thread in threads:
            thread.join(10)

    def _serve(self, name: str, node: Node) -> None:
        try:
            node.run()
        except Exception:
            log.exception("the node of chain %s failed", name)
        finally:
            if not self._stop.is_set():
                log.warning("the node of chain %s stopped: stopping every chain", name)
                self._stop.set()

    def stop(self) -> None:
        """Asks every chain's node to stop."""
        self._stop.set()

    @property
    def lease_lost(self) -> Exception | None:
        """Why a chain's node stopped, if other nodes took its work over."""
        return next((n.lease_lost for n in self.nodes.values() if n.lease_lost is not None), None)

    def serve_metrics(self, port: int, host: str = "127.0.0.1") -> int:
        """Serves every chain's metrics on one `/metrics`, labelled `chain`; returns the bound port."""
        registry = CollectorRegistry()
        registry.register(_ChainLabelled({name: node.metrics.registry for name, node in self.nodes.items()}))
        server, _ = start_http_server(port, addr=host, registry=registry)
        return int(server.server_port)
