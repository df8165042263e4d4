"""Fixtures on real parts: the pinned Anvil, forge-built contracts, a DEV enclave process, the node."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from coprocessor import devnet
from coprocessor.chain import ANVIL_KEYS, Deployment, TxSender, connect
from coprocessor.consumer import ExampleConsumerClient
from coprocessor.enclave.server import EnclaveClient
from coprocessor.journal import Journal
from coprocessor.node import Node
from coprocessor.template import Template, find_template, load_templates
from coprocessor.toolchain import TEMPLATES_DIR, forge_build

TEST_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class Devnet:
    """A running local stack, shared by the tests of one module."""

    rpc_url: str
    w3: Web3
    deployment: Deployment
    enclave_url: str
    templates: dict[bytes, Template]
    payee: str
    pki_dir: Path

    def template(self, name: str) -> Template:
        """A template by name."""
        return find_template(self.templates, name)

    def user(self) -> ExampleConsumerClient:
        """A client that asks through the example consumer as the USER account."""
        return ExampleConsumerClient(self.w3, TxSender(self.w3, ANVIL_KEYS[devnet.USER]), self.deployment.consumer)

    def start_node(self, journal_path: Path, start_block: int | None = None) -> tuple[Node, threading.Thread]:
        """Starts a node in a thread, reading from `start_block` (default: the current block)."""
        w3 = connect(self.rpc_url)
        node = Node(
            w3,
            self.deployment.coprocessor,
            Journal(journal_path),
            EnclaveClient(self.enclave_url),
            TxSender(w3, ANVIL_KEYS[devnet.NODE]),
            w3.eth.block_number + 1 if start_block is None else start_block,
        )
        thread = threading.Thread(target=node.run, daemon=True)
        thread.start()
        return node, thread


@pytest.fixture(scope="session")
def contracts_built() -> None:
    """Builds with the pinned forge; a missing tool fails here, never skips."""
    forge_build()


@pytest.fixture(scope="module")
def stack(contracts_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """Anvil + deployed contracts + a registered DEV enclave serving the project's and the test templates."""
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    enclave_process = None
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        template_dirs = [TEMPLATES_DIR, TEST_TEMPLATES]
        templates = load_templates(template_dirs)
        # Published with no author fee; fee-echo is left for test_template_registry.py to publish with one.
        deployment = devnet.deploy(rpc_url, templates=[t for t in templates.values() if t.name != "fee-echo"])
        w3 = connect(rpc_url)
        payee = TxSender(w3, ANVIL_KEYS[devnet.PAYEE]).address
        state = tmp_path_factory.mktemp("enclave")
        enclave_process, url = devnet.start_enclave(deployment, payee, template_dirs, state / "dev-pki", state / "enclave.log", chain_rpc=rpc_url)
        devnet.register_enclave(rpc_url, deployment, EnclaveClient(url), state / "dev-pki")
        yield Devnet(rpc_url, w3, deployment, url, templates, payee, state / "dev-pki")
    finally:
        devnet.stop(enclave_process)
        devnet.stop(anvil)


@pytest.fixture
def node(stack: Devnet, tmp_path: Path) -> Iterator[Node]:
    """A node in a thread with a fresh journal, stopped after the test."""
    running, thread = stack.start_node(tmp_path / "journal.sqlite")
    yield running
    running.stop()
    thread.join(10)
    assert not thread.is_alive(), "node did not stop"
