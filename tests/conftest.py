"""Fixtures on real parts: the pinned Anvil, forge-built contracts, a DEV enclave process, the node."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_abi import decode
from web3 import Web3

from coprocessor.chain import ANVIL_KEYS, Deployment, TxSender, connect
from coprocessor.dev import devnet
from coprocessor.dev.consumer import ExampleConsumerClient
from coprocessor.dev.postgres import LocalPostgres
from coprocessor.dev.toolchain import TEMPLATES_DIR, forge_build
from coprocessor.node.enclave_client import EnclaveClient
from coprocessor.node.journal import Journal
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import REQUEST_FULFILLED_TOPIC, Status
from coprocessor_enclave.template import Template, find_template, load_templates

TEST_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class Devnet:
    """A running local stack, shared by the tests of one module."""

    rpc_url: str
    w3: Web3
    deployment: Deployment
    enclave_url: str
    enclave_token_file: Path
    templates: dict[bytes, Template]
    payee: str
    pki_dir: Path

    def enclave(self) -> EnclaveClient:
        """A client of the stack's enclave, with its owner's token."""
        return EnclaveClient.with_token_file(self.enclave_url, self.enclave_token_file)

    def template(self, name: str) -> Template:
        """A template by name."""
        return find_template(self.templates, name)

    def user(self) -> ExampleConsumerClient:
        """A client that asks through the example consumer as the USER account."""
        return ExampleConsumerClient(self.w3, TxSender(self.w3, ANVIL_KEYS[devnet.USER]), self.deployment.consumer)

    def settled(self, request_ids: set[bytes], from_block: int, timeout: float) -> dict[bytes, Status]:
        """Statuses from the Coprocessor's RequestFulfilled events, waiting up to `timeout` for all of `request_ids`.

        Read from events rather than the consumer: a callback may run out of gas storing a long reason.
        """
        deadline = time.monotonic() + timeout
        statuses: dict[bytes, Status] = {}
        topic = "0x" + REQUEST_FULFILLED_TOPIC.hex()
        while set(statuses) != request_ids and time.monotonic() < deadline:
            time.sleep(0.2)
            logs = self.w3.eth.get_logs(
                {"address": self.deployment.coprocessor, "fromBlock": from_block, "toBlock": "latest", "topics": [topic]}
            )
            for log in logs:
                request_id = bytes(log["topics"][1])
                if request_id in request_ids:
                    statuses[request_id] = Status(decode(["uint8", "bool"], bytes(log["data"]))[0])
        return statuses

    def start_node(self, journal_path: Path, start_block: int | None = None) -> tuple[Node, threading.Thread]:
        """Starts a node in a thread, reading from `start_block` (default: the current block)."""
        w3 = connect(self.rpc_url)
        node = Node(
            w3,
            self.deployment.coprocessor,
            Journal(journal_path),
            self.enclave(),
            TxSender(w3, ANVIL_KEYS[devnet.NODE]),
            w3.eth.block_number + 1 if start_block is None else start_block,
            subscriptions=self.deployment.subscriptions,
        )
        thread = threading.Thread(target=node.run, daemon=True)
        thread.start()
        return node, thread


@pytest.fixture
def bare_anvil() -> Iterator[str]:
    """A fresh Anvil with none of our contracts (chain 31337): its RPC URL."""
    port = devnet.free_port()
    process = devnet.start_anvil(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        devnet.stop(process)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A real PostgreSQL server for the session (pgserver's binaries); a missing one fails, never skips."""
    server = LocalPostgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a journal lives, once per backend: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return tmp_path / "journal.sqlite"
    server: LocalPostgres = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture(scope="session")
def contracts_built() -> None:
    """Builds with the pinned forge, tests' contracts included; a missing tool fails here, never skips."""
    forge_build(tests=True)


@contextmanager
def open_stack(
    state: Path,
    template_dirs: Sequence[Path],
    enclave_chain_rpc: Callable[[str], str] = lambda anvil_url: anvil_url,
    secrets_file: Path | None = None,
    unpublished: Sequence[str] = (),
    read_chains: Path | None = None,
) -> Iterator[Devnet]:
    """Anvil, the contracts, every template in `template_dirs` published (but `unpublished`), and a
    registered DEV enclave whose chain RPC is `enclave_chain_rpc(anvil_url)`."""
    state.mkdir(parents=True, exist_ok=True)
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    enclave_process = None
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        templates = load_templates(list(template_dirs))
        deployment = devnet.deploy(rpc_url, templates=[t for t in templates.values() if t.name not in unpublished])
        w3 = connect(rpc_url)
        payee = TxSender(w3, ANVIL_KEYS[devnet.PAYEE]).address
        enclave_process, client = devnet.start_enclave(
            deployment,
            payee,
            template_dirs,
            state / "dev-pki",
            state / "enclave.token",
            state / "enclave.log",
            chain_rpc=enclave_chain_rpc(rpc_url),
            secrets_file=secrets_file,
            read_chains=read_chains,
        )
        devnet.register_enclave(rpc_url, deployment, client, state / "dev-pki")
        yield Devnet(rpc_url, w3, deployment, client.url, state / "enclave.token", templates, payee, state / "dev-pki")
    finally:
        devnet.stop(enclave_process)
        devnet.stop(anvil)


@pytest.fixture(scope="module")
def stack(contracts_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """Anvil + deployed contracts + a registered DEV enclave serving the project's and the test templates."""
    # Published with no author fee; fee-echo is left for test_template_registry.py to publish with one.
    with open_stack(tmp_path_factory.mktemp("enclave"), [TEMPLATES_DIR, TEST_TEMPLATES], unpublished=["fee-echo"]) as devnet_stack:
        yield devnet_stack


@pytest.fixture
def node(stack: Devnet, tmp_path: Path) -> Iterator[Node]:
    """A node in a thread with a fresh journal, stopped after the test."""
    running, thread = stack.start_node(tmp_path / "journal.sqlite")
    yield running
    running.stop()
    thread.join(10)
    assert not thread.is_alive(), "node did not stop"
