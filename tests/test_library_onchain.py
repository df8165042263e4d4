"""Every library template end to end: a request on Anvil, the node, the enclave, the callback.

Templates that fetch over HTTP run as copies whose hosts and endpoints point at a real
loopback server (a copy is a different bundle, so a different template id). Chain-reading
templates read a real ERC-20 and Uniswap v4's real PoolManager on the same Anvil. Each test
also reads the gas the consumer's callback used from a call trace of the fulfil transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi import decode
from eth_utils import keccak, to_checksum_address

from coprocessor.chain import ANVIL_KEYS, TxSender
from coprocessor.dev import devnet
from coprocessor.dev.toolchain import TEMPLATES_DIR, npm_artifact
from coprocessor.node.pipeline import Node
from coprocessor.testing import LoopbackHttp, Reply, Seen, loopback_copy
from coprocessor_enclave.protocol import REQUEST_FULFILLED_TOPIC, Status
from coprocessor_enclave.template import Template, encode_args, load_template

from .conftest import Devnet, open_stack

API_KEY = "sk-e2e-" + "9" * 12
SOURCE_PRICES = ["3001.5", "3000.25", "2999.75", "3000.5", "4200"]  # the last one is an outlier
CALLBACK_SELECTOR = keccak(b"onCoprocessorResponse(bytes32,uint8,bytes)")[:4]


def _chat(seen: Seen) -> Reply:
    content = '{"allowed": false, "category": "spam"}' if "followers" in seen.body.decode() else '{"allowed": true, "category": "none"}'
    return Reply.json({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackHttp]:
    with LoopbackHttp() as http:
        http.routes["/doc"] = Reply.json({"data": {"items": [{"price": "1234.5678"}]}})
        for i, price in enumerate(SOURCE_PRICES):
            http.routes[f"/source{i}"] = Reply.json({"price": price})
        http.routes["/v1/chat/completions"] = _chat
        yield http


@pytest.fixture(scope="module")
def library(contracts_built: None, tmp_path_factory: pytest.TempPathFactory, server: LoopbackHttp) -> Iterator[Devnet]:
    base = tmp_path_factory.mktemp("library")
    copies = base / "copies"
    copies.mkdir()
    for name in ("json-http", "price-aggregate", "ai-moderation"):
        loopback_copy(TEMPLATES_DIR / name, copies, server, [f"/source{i}" for i in range(len(SOURCE_PRICES))])
    moderation = load_template(copies / "ai-moderation")
    secrets = base / "secrets.toml"
    secrets.write_text(f'[OPENAI_API_KEY]\nvalue = "{API_KEY}"\ntemplates = ["{moderation.id_hex}"]\n')
    with open_stack(base / "state", [TEMPLATES_DIR, copies], secrets_file=secrets) as stack:
        yield stack


@pytest.fixture(scope="module")
def library_node(library: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    running, thread = library.start_node(tmp_path_factory.mktemp("node") / "journal.sqlite")
    yield running
    running.stop()
    thread.join(10)


def _template(stack: Devnet, name: str, copy: bool = False) -> Template:
    """The library template `name`, or its loopback copy."""
    matches = [t for t in stack.templates.values() if t.name == name and (t.path.parent != TEMPLATES_DIR) == copy]
    assert len(matches) == 1, matches
    return matches[0]


def _request(stack: Devnet, template: Template, args: list[Any]) -> tuple[tuple[Any, ...], int, float]:
    """Requests `template` through the example consumer; returns the decoded output, the callback's gas and the latency."""
    client = stack.user()
    request_id, sent_at = client.ask(template.template_id, encode_args(template, args))
    answer = client.wait(request_id, sent_at, 60)
    assert answer.status == Status.OK, answer.output.decode(errors="replace")
    return tuple(decode(list(template.outputs), answer.output)), _callback_gas(stack, request_id), answer.latency


def _callback_gas(stack: Devnet, request_id: bytes) -> int:
    """Gas the consumer's onCoprocessorResponse used, from a call trace of the fulfil transaction."""
    topic = "0x" + REQUEST_FULFILLED_TOPIC.hex()
    logs = stack.w3.eth.get_logs({"address": stack.deployment.coprocessor, "fromBlock": 0, "topics": [topic, "0x" + request_id.hex()]})
    trace = stack.w3.provider.make_request("debug_traceTransaction", [logs[0]["transactionHash"].to_0x_hex(), {"tracer": "callTracer"}])
    calls, found = [trace["result"]], []
    while calls:
        call = calls.pop()
        calls.extend(call.get("calls", []))
        if call.get("input", "").startswith("0x" + CALLBACK_SELECTOR.hex()) and bytes.fromhex(call["input"][10:74]) == request_id:
            found.append(int(call["gasUsed"], 16))
    assert len(found) == 1, "no callback in the fulfil trace"
    return found[0]


def _record(name: str, gas: int, latency: float) -> None:
    print(f"\n{name}: callback gas {gas}, request to callback {latency * 1000:.0f} ms")


def test_medianPrice_onchain(library: Devnet, library_node: Node) -> None:
    values, gas, latency = _request(library, _template(library, "median-price"), [[100, 101, 250], 500])
    assert values == (100, 2)
    _record("median-price", gas, latency)


def test_jsonHttp_onchain(library: Devnet, library_node: Node, server: LoopbackHttp) -> None:
    values, gas, latency = _request(library, _template(library, "json-http", copy=True), [server.url("/doc"), "data.items[0].price", 2])
    assert values == (123456,)
    _record("json-http", gas, latency)


def test_priceAggregate_onchain(library: Devnet, library_node: Node) -> None:
    values, gas, latency = _request(library, _template(library, "price-aggregate", copy=True), [200, 3, 8])
    assert values == (300037500000, 4)  # median of the four that agree, 3000.375, times 1e8
    _record("price-aggregate", gas, latency)


def test_aiModeration_onchain(library: Devnet, library_node: Node, server: LoopbackHttp) -> None:
    template = _template(library, "ai-moderation", copy=True)
    values, gas, latency = _request(library, template, ["Buy cheap followers now"])
    assert values == (False, 7, "spam")
    assert server.seen[-1].headers["authorization"] == f"Bearer {API_KEY}"
    _record("ai-moderation", gas, latency)


def test_tokenHolder_onchain(library: Devnet, library_node: Node) -> None:
    owner = TxSender(library.w3, ANVIL_KEYS[devnet.DEPLOYER])
    erc20 = npm_artifact("@uniswap/v4-core", "TestERC20")  # mints its constructor argument to the deployer
    token = owner.deploy_artifact(erc20, 10**21)
    holder = to_checksum_address("0x" + "b0" * 20)
    owner.call_function(library.w3.eth.contract(address=token, abi=erc20["abi"]), "transfer", holder, 750)
    template = _template(library, "token-holder")
    assert _request(library, template, [token, holder, 751])[0] == (False, 750)
    values, gas, latency = _request(library, template, [token, holder, 500])
    assert values == (True, 750)
    _record("token-holder", gas, latency)


def test_v4Volatility_onchain(library: Devnet, library_node: Node) -> None:
    sender = TxSender(library.w3, ANVIL_KEYS[devnet.DEPLOYER])
    manager = sender.deploy_artifact(npm_artifact("@uniswap/v4-core", "PoolManager"), sender.address)
    pool_id = keccak(b"e2e pool")
    slot = "0x" + keccak(pool_id + (6).to_bytes(32, "big")).hex()  # _pools[poolId].slot0 (StateLibrary.POOLS_SLOT = 6)

    def rpc(method: str, *params: object) -> None:
        library.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]

    # Slot0 words (lpFee 3000, price 1) with ticks moving ±40, written 2 blocks apart. Anvil applies
    # anvil_setStorageAt to the latest block's state too, so that block's proofs stop matching its
    # header: writes land on the blocks between the samples (the anchor is the last block mined here).
    ticks = (0, 40, 0, 40, 0)
    for i, tick in enumerate(ticks):
        word = (3000 << 208) | ((tick & 0xFFFFFF) << 160) | 2**96
        rpc("anvil_setStorageAt", manager, slot, "0x" + word.to_bytes(32, "big").hex())
        rpc("anvil_mine", hex(1 if i == len(ticks) - 1 else 2))
    values, gas, latency = _request(library, _template(library, "v4-volatility"), [manager, pool_id, 4, 2, 500, 10_000])
    volatility, fee = values
    assert volatility > 0 and 500 < fee <= 10_000
    _record("v4-volatility", gas, latency)


def test_merkleRoot_onchain(library: Devnet, library_node: Node) -> None:
    leaves = [keccak(i.to_bytes(32, "big")) for i in range(500)]
    (root, proof), gas, latency = _request(library, _template(library, "merkle-root"), [leaves, 123])
    computed = leaves[123]
    for sibling in proof:  # OpenZeppelin MerkleProof.processProof: sorted pairs
        computed = keccak(min(computed, sibling) + max(computed, sibling))
    assert computed == root and len(proof) == 9
    _record("merkle-root", gas, latency)


def test_heartbeat_onchain(library: Devnet, library_node: Node) -> None:
    values, gas, latency = _request(library, _template(library, "heartbeat"), [7, b""])
    run_index, block, timestamp = values
    assert run_index == 7
    assert timestamp == library.w3.eth.get_block(block)["timestamp"]  # the anchor's, from its verified header
    _record("heartbeat", gas, latency)


COVERED = {"median-price", "json-http", "price-aggregate", "ai-moderation", "token-holder", "v4-volatility", "merkle-root", "heartbeat"}
# Library templates that need more than one chain, covered where there are two.
COVERED_ELSEWHERE = {"cross-chain-balance": "tests/test_chains.py"}


def test_everyLibraryTemplate_coveredHere() -> None:
    assert {p.parent.name for p in TEMPLATES_DIR.glob("*/template.toml")} == COVERED | set(COVERED_ELSEWHERE)
