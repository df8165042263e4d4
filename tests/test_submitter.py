"""The submitter against a fake chain account: batching, nonce gaps, `nonce too low`, replaced, dropped,
reverted and stuck transactions. A real journal; only the chain is simulated, so every race is exact."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from coprocessor.errors import ChainError
from coprocessor.node.journal import Journal, State
from coprocessor.node.submitter import Submitter, SubmitterConfig
from coprocessor_enclave.protocol import Request, RequestState, Status

COPROCESSOR = "0x" + "cc" * 20


@dataclass
class FakeAccount:
    """A chain with a pool: transactions wait until `mine()`; `latest` counts the account's mined nonces."""

    address: str = "0x" + "aa" * 20
    pool: dict[int, tuple[bytes, dict[str, Any]]] = field(default_factory=dict)
    mined: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    latest: int = 0
    sent: list[tuple[int, bytes]] = field(default_factory=list)
    revert_next: bool = False
    refuse: set[bytes] = field(default_factory=set)  # request ids whose fulfil would revert

    def estimate(self, to: str | None, data: bytes, value: int = 0, block: str = "latest") -> int:
        if any(rid in data for rid in self.refuse):
            raise ChainError("CommitmentMismatch(0x…)")
        return 100_000

    def send_at(self, nonce: int, to: str, data: bytes, gas: int, max_fee: int, tip: int) -> bytes:
        if nonce < self.latest:
            raise ChainError("nonce too low")
        if nonce in self.pool and max_fee < self.pool[nonce][1]["max_fee"] * 11 // 10:
            raise ChainError("replacement transaction underpriced")
        tx_hash = keccak(nonce.to_bytes(8, "big") + data + max_fee.to_bytes(32, "big"))
        self.pool[nonce] = (tx_hash, {"data": data, "max_fee": max_fee, "nonce": nonce})
        self.sent.append((nonce, tx_hash))
        return tx_hash

    def nonce_at(self, block: str) -> int:
        if block == "pending":
            nonce = self.latest
            while nonce in self.pool:
                nonce += 1
            return nonce
        return self.latest

    def receipt(self, tx_hash: bytes) -> Any | None:
        return self.mined.get(tx_hash)

    def lookup(self, tx_hash: bytes) -> Any | None:
        if tx_hash in self.mined or any(h == tx_hash for h, _ in self.pool.values()):
            return {"hash": tx_hash}
        return None

    def mine(self) -> None:
        """Mines every pool transaction whose nonce is next, in order (a gap stops it)."""
        while self.latest in self.pool:
            tx_hash, _ = self.pool.pop(self.latest)
            status = 0 if self.revert_next else 1
            self.revert_next = False
            self.mined[tx_hash] = {"transactionHash": tx_hash, "status": status, "blockNumber": 10 + self.latest, "logs": [], "gasUsed": 1}
            self.latest += 1

    def foreign(self, nonce: int) -> None:
        """Another transaction of this account takes `nonce` and is mined."""
        self.pool.pop(nonce, None)
        self.mined[keccak(b"foreign" + nonce.to_bytes(8, "big"))] = {"status": 1}
        self.latest = max(self.latest, nonce + 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _request(n: int) -> Request:
    return Request(
        request_id=keccak(b"id" + n.to_bytes(4, "big")),
        consumer="0x" + "11" * 20,
        template_id=b"\x22" * 32,
        input_hash=keccak(b"input"),
        callback_gas_limit=50_000,
        fee=0,
        deadline=10**9,
        anchor_block=1,
        anchor_hash=b"\x33" * 32,
    )


def _signed_journal(path: Path | str, count: int) -> tuple[Journal, list[Request]]:
    journal = Journal(path)
    requests = [_request(n) for n in range(count)]
    journal.record([(r, b"input", 5) for r in requests], [], 5, "ab" * 32)
    for entry in journal.claim(count):
        assert journal.signed(entry, Status.OK, b"\x00" * 32, b"\x01" * 65)
    return journal, requests


def _submitter(journal: Journal, account: FakeAccount, clock: Clock, **config: Any) -> Submitter:
    settings = {"max_batch": 4, "max_in_flight": 4, "drop_check_after": 0.5, "bump_after": 15.0, **config}
    states: dict[bytes, RequestState] = {}
    return Submitter(
        account,
        COPROCESSOR,
        journal,
        SubmitterConfig(**settings),
        request_state=lambda rid: states.get(rid, RequestState.PENDING),
        clock=clock,
    )


def _states(journal: Journal, requests: list[Request]) -> list[State]:
    return [journal.by_commitment(r.commitment()).state for r in requests]  # type: ignore[union-attr]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_sendReady_loneRequest_sentAtOnce(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 1)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    assert submitter.send_ready(chain_time=0, base_fee=1) == 1
    assert [n for n, _ in account.sent] == [0]
    assert _states(journal, requests) == [State.SUBMITTED]


def test_sendReady_enclaveStillBusy_partialBatchWaitsBatchWaitAfterTheLastFulfil(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 7)
    account = FakeAccount()
    busy = [True]
    submitter = _submitter(journal, account, clock, batch_wait=0.05)
    submitter.more_coming = lambda: busy[0]
    assert submitter.send_ready(0, 1) == 4  # the first fulfil: nothing sent lately, so at once
    account.mine()
    submitter.track()
    clock.now += 0.01
    assert submitter.send_ready(0, 1) == 0, "3 signed, more being made, 10 ms after the last fulfil: wait"
    assert submitter.hold_until == pytest.approx(1000.05)
    clock.now += 0.04
    assert submitter.send_ready(0, 1) == 3, "the wait is over: what is signed goes"
    # Idle (nothing being made): a lone response goes at once, however recent the last fulfil.
    journal.record([(_request(99), b"input", 6)], [], 6, "cd" * 32)
    for entry in journal.claim(1):
        journal.signed(entry, Status.OK, b"\x00" * 32, b"\x01" * 65)
    account.mine()
    submitter.track()
    busy[0] = False
    assert submitter.send_ready(0, 1) == 1


def test_sendReady_requestsWaitingToRun_partialBatchWaitsTheBacklogWait(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 7)
    account = FakeAccount()
    behind = [True]
    submitter = _submitter(journal, account, clock, batch_wait=0.05, backlog_batch_wait=0.25)
    submitter.more_coming = lambda: True
    submitter.behind = lambda: behind[0]
    assert submitter.send_ready(0, 1) == 4
    account.mine()
    submitter.track()
    clock.now += 0.1
    assert submitter.send_ready(0, 1) == 0, "behind: 100 ms after the last fulfil, past batch_wait, still waiting"
    assert submitter.hold_until == pytest.approx(1000.25)
    behind[0] = False
    assert submitter.send_ready(0, 1) == 3, "caught up: batch_wait applies again, and it is over"


def test_sendReady_whileInFlight_waitsForAFullBatch(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 7)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    assert submitter.send_ready(0, 1) == 4  # nothing in flight: a full batch goes at once
    assert submitter.send_ready(0, 1) == 0  # 3 left, one fulfil in flight: wait to fill a batch
    account.mine()
    submitter.track()
    assert submitter.send_ready(0, 1) == 3  # the slot is free: the rest goes in one transaction
    assert [n for n, _ in account.sent] == [0, 1]


def test_track_droppedTransaction_itemsRefillTheGap(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 8)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    assert submitter.send_ready(0, 1) == 4
    assert submitter.send_ready(0, 1) == 4  # a full batch may join one in flight
    dropped_hash, _ = account.pool.pop(0)  # nonce 0 leaves the pool: nonce 1 cannot be mined
    clock.now += 0.6
    submitter.track()
    assert set(submitter.in_flight) == {1}
    assert _states(journal, requests[:4]) == [State.SIGNED] * 4
    assert submitter.send_ready(0, 1) == 4
    assert account.sent[-1][0] == 0, "the dropped nonce is refilled, not skipped"
    account.mine()
    submitter.track()
    assert account.latest == 2 and not submitter.in_flight
    assert {journal.by_commitment(r.commitment()).tx_hash for r in requests[:4]} == {account.sent[-1][1].hex()}  # type: ignore[union-attr]


def test_send_nonceTooLow_resyncsAndSendsOnce(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 1)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    submitter._free_nonce()  # the submitter learned nonce 0 ...
    account.foreign(0)  # ... then another sender of this account used it
    assert submitter.send_ready(0, 1) == 1
    assert [n for n, _ in account.sent] == [1]
    assert list(submitter.in_flight) == [1]


def test_track_replacedByAnotherTransaction_itemsGoOutAgain(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 2)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    submitter.send_ready(0, 1)
    account.foreign(0)  # an operator's transaction at the same nonce won
    submitter.track()
    assert _states(journal, requests) == [State.SIGNED] * 2
    assert not submitter.in_flight
    assert submitter.send_ready(0, 1) == 2
    assert account.sent[-1][0] == 1


def test_track_stuckTransaction_bumpsAtTheSameNonceNeverASecondCopy(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 2)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    submitter.send_ready(0, 1)
    first_fee = account.pool[0][1]["max_fee"]
    clock.now += 16
    submitter.track()
    assert [n for n, _ in account.sent] == [0, 0], "a bump replaces at the same nonce"
    assert account.pool[0][1]["max_fee"] >= first_fee * 11 // 10
    assert submitter.send_ready(0, 1) == 0, "nothing else is signed: no second copy goes out"
    account.mine()
    submitter.track()
    assert not submitter.in_flight and account.latest == 1
    entries = [journal.by_commitment(r.commitment()) for r in requests]
    assert all(e is not None and e.tx_hash == account.sent[-1][1].hex() for e in entries)


def test_track_revertedTransaction_retriesThenStopsWithAReason(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 1)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    for attempt in range(3):
        assert submitter.send_ready(0, 1) == 1
        account.revert_next = True
        account.mine()
        submitter.track()
        entry = journal.by_commitment(requests[0].commitment())
        assert entry is not None and entry.state == State.SIGNED and entry.attempts == attempt + 1
    assert submitter.send_ready(0, 1) == 0
    entry = journal.by_commitment(requests[0].commitment())
    assert entry is not None and entry.state == State.FAILED and "reverted 3 times" in (entry.error or "")


def test_sendReady_afterARevert_itemTheChainRefusesIsSetAsideWithItsReason(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 3)
    account = FakeAccount(refuse={requests[1].request_id})
    submitter = _submitter(journal, account, clock)
    assert submitter.send_ready(0, 1) == 3, "a first attempt is not simulated"
    account.revert_next = True
    account.mine()
    submitter.track()
    assert submitter.send_ready(0, 1) == 2, "after a revert, each item is simulated and the bad one set aside"
    refused = journal.by_commitment(requests[1].commitment())
    assert refused is not None and refused.state == State.DROPPED and "CommitmentMismatch" in (refused.error or "")
    assert _states(journal, [requests[0], requests[2]]) == [State.SUBMITTED] * 2


def test_sendReady_pastDeadline_notSent(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 1)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    assert submitter.send_ready(chain_time=10**9 + 1, base_fee=1) == 0
    assert not account.sent


def test_sendReady_gapWithNothingSigned_filledByATransferToItself(journal_target: Path | str, clock: Clock) -> None:
    journal, requests = _signed_journal(journal_target, 8)
    account = FakeAccount()
    submitter = _submitter(journal, account, clock)
    assert submitter.send_ready(0, 1) == 4 and submitter.send_ready(0, 1) == 4
    account.pool.pop(0)  # nonce 0 is gone (a reorg removed it) and its items were settled by another node:
    for r in requests[:4]:
        journal.finish(r.commitment(), State.SETTLED)
    clock.now += 0.6
    submitter.track()
    assert submitter.send_ready(0, 1) == 0
    assert account.sent[-1][0] == 0 and account.pool[0][1]["data"] == b"", "the gap is filled by an empty transfer"
    account.mine()
    submitter.track()
    assert account.latest == 2 and not submitter.in_flight, "the fulfil above the gap is mined"


def test_signEip1559_matchesEthAccountByteForByte() -> None:
    import coincurve
    from eth_account import Account
    from eth_utils import to_checksum_address

    from coprocessor.chain import ANVIL_KEYS, sign_eip1559

    account = Account.from_key(ANVIL_KEYS[1])
    key = coincurve.PrivateKey(bytes(account.key))
    for nonce, data in [(0, b""), (7, b"\x01" * 40_000), (2**40, bytes(range(256)))]:
        ours = sign_eip1559(key, 31337, nonce, 10**9, 3 * 10**9 + 7, 123_456, COPROCESSOR, data)
        theirs = account.sign_transaction(
            {
                "chainId": 31337,
                "nonce": nonce,
                "maxPriorityFeePerGas": 10**9,
                "maxFeePerGas": 3 * 10**9 + 7,
                "gas": 123_456,
                "to": to_checksum_address(COPROCESSOR),
                "value": 0,
                "data": data,
            }
        ).raw_transaction
        assert ours == bytes(theirs)


def test_sendAt_poolAlreadyHasItOrTheAnswerIsLost_returnsItsHashNeverSendsTwice() -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from eth_utils import keccak
    from web3 import Web3

    from coprocessor.chain import ANVIL_KEYS, TxSender

    sends: list[str] = []
    mode = ["already known"]

    class Rpc(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if call["method"] == "eth_chainId":
                body = {"jsonrpc": "2.0", "id": call["id"], "result": "0x7a69"}
            elif mode[0] == "drop":
                sends.append(call["params"][0])
                self.close_connection = True  # read the send, then hang up without an answer
                return
            else:
                sends.append(call["params"][0])
                body = {"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32000, "message": "already known"}}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Rpc)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sender = TxSender(Web3(Web3.HTTPProvider(f"http://127.0.0.1:{server.server_address[1]}")), ANVIL_KEYS[1])
        for expected_sends, kind in ((1, "already known"), (2, "drop")):
            mode[0] = kind
            tx_hash = sender.send_at(3, COPROCESSOR, b"\x01", 100_000, 10**9, 10**8)
            assert len(sends) == expected_sends, f"{kind}: the transaction was sent {len(sends)} times"
            assert tx_hash == keccak(bytes.fromhex(sends[-1][2:])), kind
    finally:
        server.shutdown()


def test_nextRetry_earliestBackoffOfASeenRequest_readFromItsIndex(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    requests = [_request(n) for n in range(500)]
    journal.record([(r, b"input", 5) for r in requests], [], 5, "ab" * 32)
    assert journal.next_retry() is None, "nothing backed off"
    first, second = journal.claim(2)
    before = time.time()
    journal.retry_later(first, 5.0, "enclave unreachable")
    journal.retry_later(second, 2.0, "enclave unreachable")
    assert before + 2.0 <= journal.next_retry() <= time.time() + 2.0  # type: ignore[operator]
    # Asked on every dispatcher wake with a backlog: a walk over 10,000 seen rows per response cost the node.
    plan = journal.db.query(  # the plan is the point
        "EXPLAIN QUERY PLAN SELECT MIN(retry_at) FROM requests INDEXED BY requests_retry WHERE state = 'seen' AND retry_at > 0"
    )
    assert "requests_retry" in str(plan)
