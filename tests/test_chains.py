"""One node, one enclave, two Anvils with different chain ids: requests on both are answered, each signed
for its own chain's Coprocessor and reading its own chain; one chain's RPC going down leaves the other's
latency at its idle level."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from coprocessor.chain import ANVIL_KEYS, TxSender, connect
from coprocessor.dev import devnet
from coprocessor.dev.chains import DEV_FINALITY_DEPTH, DevChain, chains_file, multichain_node, start_chains, start_enclave, stop_chains
from coprocessor.dev.consumer import ExampleConsumerClient
from coprocessor.dev.postgres import LocalPostgres
from coprocessor.dev.toolchain import TEMPLATES_DIR
from coprocessor.errors import ManifestError
from coprocessor.node.chains import MultiChainNode, load_chains
from coprocessor.node.enclave_client import EnclaveClient
from coprocessor.node.journal import Journal
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import Template, encode_args, find_template, load_templates

from .conftest import TEST_TEMPLATES

HOLDER = to_checksum_address("0x" + "7e" * 20)
LATENCY_SAMPLES = 6


@dataclass
class TwoChains:
    """Two local chains and the one enclave registered on both."""

    chains: list[DevChain]
    enclave: EnclaveClient
    templates: dict[bytes, Template]
    token_file: Path


@pytest.fixture(scope="module")
def chains(contracts_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoChains]:
    state = tmp_path_factory.mktemp("chains")
    templates = load_templates([TEMPLATES_DIR, TEST_TEMPLATES])
    running = start_chains(2, [t for t in templates.values() if t.name != "fee-echo"])
    process = None
    try:
        process, enclave = start_enclave(running, [TEMPLATES_DIR, TEST_TEMPLATES], state)
        yield TwoChains(running, enclave, templates, state / "enclave.token")
    finally:
        devnet.stop(process)
        stop_chains(running)


@pytest.fixture
def node(chains: TwoChains, tmp_path: Path) -> Iterator[MultiChainNode]:
    running, enclave = chains.chains, chains.enclave
    served = multichain_node(running, enclave, tmp_path / "journal.sqlite")
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    yield served
    served.stop()
    thread.join(15)
    assert not thread.is_alive(), "the node did not stop"


def _client(chain: DevChain) -> ExampleConsumerClient:
    w3 = connect(chain.rpc_url)
    return ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), chain.deployment.consumer)


def _latency(chain: DevChain, template: Template) -> float:
    client = _client(chain)
    request_id, sent_at = client.ask(template.template_id, encode_args(template, [[3012, 3015, 3009], 200]))
    answer = client.wait(request_id, sent_at, 30)
    assert answer.status == Status.OK, answer.output
    return answer.latency


def test_multiChainNode_requestsOnBothChains_eachAnsweredForItsOwnChain(chains: TwoChains, node: MultiChainNode) -> None:
    running, enclave, templates = chains.chains, chains.enclave, chains.templates
    a, b = running
    assert (a.chain_id, b.chain_id) == (31337, 31338)
    assert [c["chainId"] for c in enclave.info()["chains"]] == [31337, 31338]
    balance = find_template(templates, "chain-balance")
    # Different balances on the two chains: each answer must read the chain its request came from.
    TxSender(connect(a.rpc_url), ANVIL_KEYS[devnet.USER]).transact(HOLDER, b"", value=111)
    TxSender(connect(b.rpc_url), ANVIL_KEYS[devnet.USER]).transact(HOLDER, b"", value=222)
    asked = {chain.name: _client(chain).ask(balance.template_id, encode_args(balance, [HOLDER, False])) for chain in running}
    for chain, expected in ((a, 111), (b, 222)):
        request_id, sent_at = asked[chain.name]
        answer = _client(chain).wait(request_id, sent_at, 30)
        assert answer.status == Status.OK, answer.output
        assert int.from_bytes(answer.output, "big") == expected
    # Each chain's work sits in its own journal partition.
    journals = {chain.name: node.nodes[chain.name].journal for chain in running}
    deadline = time.monotonic() + 10
    while not all(j.counts().get("settled", 0) >= 1 for j in journals.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [j.counts().get("settled", 0) for j in journals.values()] == [1, 1]
    assert journals[a.name].target == journals[b.name].target and journals[a.name].partition != journals[b.name].partition
    # One /metrics for both chains, every sample labelled with its chain.
    port = node.serve_metrics(0)
    exposition = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for chain in running:
        assert f'coprocessor_requests{{chain="{chain.name}",state="settled"}} 1.0' in exposition


def test_multiChainNode_oneChainsRpcDown_theOtherKeepsItsIdleLatency(chains: TwoChains, node: MultiChainNode, tmp_path: Path) -> None:
    running, templates = chains.chains, chains.templates
    a, b = running
    median = find_template(templates, "median-price")
    idle = [_latency(a, median) for _ in range(LATENCY_SAMPLES)]
    assert _latency(b, median) > 0  # chain B served before its outage
    b.anvil.send_signal(19)  # SIGSTOP: B's RPC stops answering (connections hang), the worst kind of outage
    try:
        time.sleep(1.0)  # B's node is now waiting on a dead RPC
        outage = [_latency(a, median) for _ in range(LATENCY_SAMPLES)]
    finally:
        b.anvil.send_signal(18)  # SIGCONT
    idle_median, outage_median = statistics.median(idle), statistics.median(outage)
    print(f"chain A latency: idle median {idle_median * 1000:.0f} ms, with chain B down {outage_median * 1000:.0f} ms")
    assert outage_median <= 2 * idle_median + 0.2, (idle, outage)
    assert _latency(b, median) > 0  # B recovers once its RPC answers again
    assert all(n.lease_lost is None for n in node.nodes.values())


def test_loadChains_badFiles_sayWhatIsWrong(tmp_path: Path, chains: TwoChains) -> None:
    running = chains.chains
    for chain in running:
        chain.deployment.save(tmp_path / f"{chain.name}.json")
    good = tmp_path / "chains.toml"
    good.write_text(
        "".join(f'[[chains]]\nname = "{c.name}"\nrpc = "{c.rpc_url}"\ndeployment = "{c.name}.json"\nconfirmations = 1\n' for c in running)
    )
    loaded = load_chains(good)
    assert [(c.name, c.chain_id, c.confirmations) for c in loaded] == [(c.name, c.chain_id, 1) for c in running]
    cases = {
        "": r"\[\[chains\]\]",
        '[[chains]]\nrpc = "http://x"\n': "`rpc` and `deployment`",
        f'[[chains]]\nrpc = "http://x"\ndeployment = "{running[0].name}.json"\nconfirmation = 1\n': "unknown key",
        f'[[chains]]\nrpc = "a"\ndeployment = "{running[0].name}.json"\n[[chains]]\nrpc = "b"\ndeployment = "{running[0].name}.json"\n': "each chain once",
        f'[[chains]]\nrpc = "a"\ndeployment = "{running[0].name}.json"\nreorg_depth = -1\n': "whole number",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ManifestError, match=message):
            load_chains(bad)


def test_journalPartitions_sqliteAndPostgres_keepChainsApart(tmp_path: Path, postgres: LocalPostgres) -> None:
    for target in (tmp_path / "journal.sqlite", postgres.new_database("partitions")):
        home, first, second = Journal(target), Journal(target, partition="chain_1"), Journal(target, partition="chain_2")
        first.put_secret(b"\1" * 32, "KEY", b"sealed-for-one")
        again = Journal(target, partition="chain_1")  # a restart finds its own partition again
        assert [(n, v) for _, n, v, _ in again.secrets_since(0)] == [("KEY", b"sealed-for-one")]
        assert second.secrets_since(0) == [] and home.secrets_since(0) == []
        for journal in (home, first, second, again):
            journal.close()


def test_nodeCommand_chainsFile_servesBothChains(chains: TwoChains, tmp_path: Path) -> None:
    running, enclave, templates = chains.chains, chains.enclave, chains.templates
    for i, chain in enumerate(running):
        chain.deployment.save(tmp_path / ("deployment.json" if i == 0 else f"deployment-{chain.chain_id}.json"))
    (tmp_path / "chains.toml").write_text(chains_file(running, tmp_path))
    token_file = chains.token_file
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPROCESSOR_")}
    env["COPROCESSOR_NODE_KEY"] = ANVIL_KEYS[devnet.NODE]
    log = tmp_path / "node.log"
    command = [sys.executable, "-m", "coprocessor", "node", "--chains", str(tmp_path / "chains.toml"), "--enclave", enclave.url]
    command += ["--enclave-token-file", str(token_file), "--journal", str(tmp_path / "journal.sqlite"), "--metrics-port", "0"]
    with open(log, "ab") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env, preexec_fn=devnet.die_with_parent)
    try:
        median = find_template(templates, "median-price")
        for chain in running:
            client = _client(chain)
            request_id, sent_at = client.ask(median.template_id, encode_args(median, [[5, 6, 7], 100]))
            answer = client.wait(request_id, sent_at, 60)
            assert answer.status == Status.OK, answer.output
        text = log.read_text()
        assert all(f"serving chain {chain.name} ({chain.chain_id})" in text for chain in running), text
        assert (tmp_path / f"journal.chain_{running[1].chain_id}.sqlite").exists()  # the second chain's partition
        for chain_args in ([], ["--chain", str(running[1].chain_id)]):
            shown = subprocess.run(
                [sys.executable, "-m", "coprocessor", "status", "--journal", str(tmp_path / "journal.sqlite"), *chain_args, "--json"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            assert json.loads(shown.stdout)["counts"].get("settled", 0) >= 1, shown.stdout
    finally:
        devnet.stop(process)


def test_crossChainBalance_requestOnAReadsB_theBalanceAtTheNamedBlock(chains: TwoChains, node: MultiChainNode) -> None:
    a, b = chains.chains
    library = find_template(chains.templates, "cross-chain-balance")
    holder = to_checksum_address("0x" + "5e" * 20)
    w3_b = connect(b.rpc_url)
    block = int(TxSender(w3_b, ANVIL_KEYS[devnet.USER]).transact(holder, b"", value=987_654)["blockNumber"])
    w3_b.provider.make_request("anvil_mine", [DEV_FINALITY_DEPTH])  # type: ignore[arg-type]
    client = _client(a)
    request_id, sent_at = client.ask(library.template_id, encode_args(library, [b.chain_id, block, holder]))
    answer = client.wait(request_id, sent_at, 30)
    assert answer.status == Status.OK, answer.output
    assert int.from_bytes(answer.output, "big") == 987_654 == w3_b.eth.get_balance(holder, block_identifier=block)
