"""Three nodes, three enclaves, one Anvil and one PostgreSQL journal: 2,000 requests, and the leading
node SIGKILLed mid-run. Every request settles exactly once; every duplicate fulfil attempt (a node
resending work it took over) shows on-chain as a skip, never as a revert or a second callback."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from coprocessor.chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
from coprocessor.dev import cluster, devnet
from coprocessor.dev.postgres import LocalPostgres
from coprocessor.dev.toolchain import TEMPLATES_DIR
from coprocessor.node.journal import Journal
from coprocessor_enclave.protocol import FULFILL_SELECTOR, FULFILLMENT_SKIPPED_TOPIC, REQUEST_CANCELLED_TOPIC, REQUEST_FULFILLED_TOPIC
from coprocessor_enclave.template import encode_args, find_template, load_templates

REQUESTS_PER_TX, TXS = 100, 20
LEASE = 5.0


@pytest.fixture
def chain(contracts_built: None, tmp_path: Path) -> Iterator[tuple[str, Deployment]]:
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        deployment = devnet.deploy(rpc_url, templates=load_templates([TEMPLATES_DIR]).values())
        deployment.save(tmp_path / "deployment.json")
        yield rpc_url, deployment
    finally:
        devnet.stop(anvil)


def test_threeNodes_leaderKilledMidRun_everyRequestSettledExactlyOnce(
    chain: tuple[str, Deployment], postgres: LocalPostgres, tmp_path: Path
) -> None:
    rpc_url, deployment = chain
    w3 = connect(rpc_url)
    journal_url = postgres.new_database("cluster")
    median = find_template(load_templates([TEMPLATES_DIR]), "median-price")
    nodes = cluster.start_enclaves(rpc_url, deployment, tmp_path, 3, [TEMPLATES_DIR])
    try:
        for node in nodes:
            cluster.start_node(node, rpc_url, tmp_path / "deployment.json", tmp_path, journal_url, LEASE)
        cluster.wait_serving(nodes)
        observer = Journal(journal_url, node_id="observer")  # reads only: never joins
        first_block = w3.eth.block_number + 1

        user = TxSender(w3, ANVIL_KEYS[devnet.USER])
        load = contract(w3, "LoadConsumer", user.deploy("LoadConsumer", deployment.coprocessor))
        data = bytes.fromhex(
            load.encode_abi("askMany", args=[median.template_id, encode_args(median, [[3012, 3015, 3009], 200]), REQUESTS_PER_TX, 3600])[2:]
        )
        gas = user.estimate(load.address, data) * 6 // 5
        hashes = [user.send(load.address, data, gas=gas) for _ in range(TXS)]
        assert all(user.wait(h, 60)["status"] == 1 for h in hashes)
        total = REQUESTS_PER_TX * TXS

        # Kill the node that scans the chain once a tenth is answered, while the rest is in flight.
        deadline = time.monotonic() + 60
        while load.functions.answered().call() < total // 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        (leader,) = observer.db.query("SELECT node_id FROM leader")[0]
        victim = next(n for n in nodes if n.account.lower() == leader)
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        killed_at = load.functions.answered().call()
        assert killed_at < total, "the run ended before the kill: nothing was taken over"
        owned = observer.db.query("SELECT COUNT(*) FROM requests WHERE owner = ?", (leader,))[0][0]

        deadline = time.monotonic() + 180
        while load.functions.answered().call() < total and time.monotonic() < deadline:
            for node in nodes:
                if node is not victim and node.process is not None and node.process.poll() is not None:
                    pytest.fail(f"node {node.index} exited:\n{node.log_tail()}")
            time.sleep(0.25)
        assert load.functions.answered().call() == total, "\n".join(n.log_tail() for n in nodes if n is not victim)

        # On-chain: one RequestFulfilled per request, no cancel, and every fulfil attempt accounted for.
        fulfilled: Counter[bytes] = Counter()
        skipped = cancelled = items_sent = 0
        for number in range(first_block, w3.eth.block_number + 1):
            block = w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if tx["to"] != deployment.coprocessor or bytes(tx["input"])[:4] != FULFILL_SELECTOR:
                    continue
                receipt = w3.eth.get_transaction_receipt(tx["hash"])
                assert receipt["status"] == 1, f"fulfil 0x{bytes(tx['hash']).hex()} reverted"
                items_sent += int.from_bytes(bytes(tx["input"])[36:68], "big")
                for entry in receipt["logs"]:
                    topic = bytes(entry["topics"][0])
                    if topic == REQUEST_FULFILLED_TOPIC:
                        fulfilled[bytes(entry["topics"][1])] += 1
                    elif topic == FULFILLMENT_SKIPPED_TOPIC:
                        skipped += 1
                    elif topic == REQUEST_CANCELLED_TOPIC:
                        cancelled += 1
        assert len(fulfilled) == total and set(fulfilled.values()) == {1}, "a request settled twice or not at all"
        assert cancelled == 0
        assert items_sent == total + skipped, f"{items_sent} items sent for {total} requests, {skipped} skips shown"

        survivors = [n for n in nodes if n is not victim]
        released = [n for n in survivors if "stopped renewing its lease" in n.log.read_text(errors="replace")]
        assert released, "no surviving node released the killed node's work"
        assert observer.counts().get("settled") == total
        print(f"killed after {killed_at} answered, holding {owned} requests; {skipped} duplicate attempts, all skipped on-chain")
    finally:
        cluster.stop_cluster(nodes)
