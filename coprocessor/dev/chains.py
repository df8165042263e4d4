"""Several local chains served by one enclave and one node (`coprocessor dev --chains N`, and the tests)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from coprocessor_enclave.template import Template

from ..attest.registration import KeyKeeper
from ..chain import ANVIL_KEYS, Deployment, TxSender, connect
from ..config import NodeConfig
from ..node.chains import MultiChainNode, partition_for
from ..node.enclave_client import EnclaveClient
from ..node.journal import Journal
from ..node.pipeline import Node
from . import devnet

FIRST_CHAIN_ID = 31337  # Anvil's default; the next chains count up from it
# Local chains are read across with one RPC each (their own Anvil), trusted once a block is this deep: a DEV setup,
# where the operator is trusted anyway (docs/chains.md says what a production quorum takes).
DEV_FINALITY_DEPTH = 2
PORT_STEP = 10  # chain i listens on the first port + 10 i


@dataclass
class DevChain:
    """One local chain: its Anvil, RPC URL and deployment."""

    name: str
    rpc_url: str
    deployment: Deployment
    anvil: subprocess.Popen[bytes]

    @property
    def chain_id(self) -> int:
        """The chain's id."""
        return self.deployment.chain_id


def start_chains(count: int, templates: Iterable[Template], first_port: int | None = None) -> list[DevChain]:
    """`count` Anvils with chain ids 31337, 31338, ... (ports `first_port`, `first_port` + 10, ..., clear of the dev
    node's quote and jobs ports just above the first; else free ones), the contracts deployed and `templates`
    published on each."""
    templates = list(templates)
    chains: list[DevChain] = []
    try:
        for i in range(count):
            port = devnet.free_port() if first_port is None else first_port + PORT_STEP * i
            chain_id = FIRST_CHAIN_ID + i
            anvil = devnet.start_anvil(port, ["--chain-id", str(chain_id)])
            rpc_url = f"http://127.0.0.1:{port}"
            chains.append(DevChain(f"chain-{chain_id}", rpc_url, devnet.deploy(rpc_url, templates=templates), anvil))
    except BaseException:
        stop_chains(chains)
        raise
    return chains


def stop_chains(chains: Iterable[DevChain]) -> None:
    """Stops every chain's Anvil."""
    for chain in chains:
        devnet.stop(chain.anvil)


def start_enclave(
    chains: Sequence[DevChain], template_dirs: Sequence[Path], state: Path, secrets_file: Path | None = None
) -> tuple[subprocess.Popen[bytes], EnclaveClient]:
    """One DEV enclave answering every chain (the first is its home), registered in each chain's EnclaveRegistry;
    its templates may read every chain (`ctx.chain(chain_id, block)`) through that chain's Anvil."""
    home, *others = chains
    read_chains = state / "read-chains.toml"
    read_chains.write_text(
        "".join(
            f'[[chains]]\nchain_id = {c.chain_id}\nrpcs = ["{c.rpc_url}"]\nquorum = 1\nfinality_depth = {DEV_FINALITY_DEPTH}\n'
            for c in chains
        )
    )
    payee = TxSender(connect(home.rpc_url), ANVIL_KEYS[devnet.PAYEE]).address
    process, enclave = devnet.start_enclave(
        home.deployment,
        payee,
        template_dirs,
        state / "dev-pki",
        state / "enclave.token",
        state / "enclave.log",
        chain_rpc=home.rpc_url,
        secrets_file=secrets_file,
        also=[(c.deployment, c.rpc_url) for c in others],
        read_chains=read_chains,
    )
    try:
        for chain in chains:
            devnet.register_enclave(chain.rpc_url, chain.deployment, enclave.for_chain(chain.chain_id), state / "dev-pki")
    except BaseException:
        devnet.stop(process)
        raise
    return process, enclave


def chain_node(
    chain: DevChain,
    enclave: EnclaveClient,
    journal: Path | str,
    config: NodeConfig = NodeConfig(),  # noqa: B008 - frozen
    keys_from: Path | None = None,
) -> Node:
    """The node of one chain, on its own partition of `journal`, reading from the chain's deployment block.
    With `keys_from` (the dev PKI), it also checks its enclave key on the chain and renews it before it lapses."""
    w3 = connect(chain.rpc_url)
    sender = TxSender(w3, ANVIL_KEYS[devnet.NODE])  # one nonce counter for renewals and fulfilments
    chain_enclave = enclave.for_chain(chain.chain_id)
    keeper = None
    if keys_from is not None:
        registrar = devnet.dev_registrar(chain.rpc_url, chain.deployment, keys_from, sender=sender)
        keeper = KeyKeeper(w3, chain.deployment.registry, chain_enclave, registrar, renew_before_seconds=devnet.DEV_ENCLAVE_VALIDITY // 10)
    return Node(
        w3,
        chain.deployment.coprocessor,
        Journal(journal, partition=partition_for(chain.chain_id, int(enclave.info()["chainId"]))),
        chain_enclave,
        sender,
        chain.deployment.start_block,
        config,
        keeper,
        subscriptions=chain.deployment.subscriptions,
    )


def multichain_node(
    chains: Sequence[DevChain],
    enclave: EnclaveClient,
    journal: Path | str,
    config: NodeConfig = NodeConfig(),  # noqa: B008 - frozen
    keys_from: Path | None = None,
) -> MultiChainNode:
    """One node serving every chain."""
    return MultiChainNode({chain.name: chain_node(chain, enclave, journal, config, keys_from) for chain in chains})


def chains_file(chains: Sequence[DevChain], folder: Path) -> str:
    """The chains file (`coprocessor node --chains`) of `chains`, whose deployment records are in `folder`."""
    tables = []
    for i, chain in enumerate(chains):
        record = "deployment.json" if i == 0 else f"deployment-{chain.chain_id}.json"
        assert (folder / record).exists(), record
        tables.append(f'[[chains]]\nname = "{chain.name}"\nrpc = "{chain.rpc_url}"\ndeployment = "{record}"\n')
    return "\n".join(tables)
