"""The journal, once per backend (SQLite, and a real PostgreSQL server): several nodes on one journal
claim disjoint work, a node whose lease ran out has its work released and is fenced off, and one
node at a time writes what it read from the chain."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from coprocessor.node.journal import Journal, LeaseLost, NotLeading, State
from coprocessor_enclave.protocol import Request, Status

_DEADLINE = 2_000_000_000


def _request(n: int) -> Request:
    return Request(
        request_id=n.to_bytes(32, "big"),
        consumer="0x" + "22" * 20,
        template_id=b"\x07" * 32,
        input_hash=b"\x00" * 32,
        callback_gas_limit=100_000,
        fee=0,
        deadline=_DEADLINE,
        anchor_block=1,
        anchor_hash=b"\x33" * 32,
    )


def _recorded(target: Path | str, count: int, node_id: str = "a", lease: float = 10.0) -> tuple[Journal, list[Request]]:
    journal = Journal(target, node_id=node_id, lease_seconds=lease)
    requests = [_request(n) for n in range(1, count + 1)]
    journal.record([(r, b"input", 5) for r in requests], [], 5, "ab" * 32)
    return journal, requests


def _joined(journal: Journal) -> Journal:
    journal.join()
    journal.heartbeat()
    return journal


def test_claim_twoNodesAtOnce_takeDisjointWorkAndAllOfIt(journal_target: Path | str) -> None:
    first, requests = _recorded(journal_target, 60)
    second = Journal(journal_target, node_id="b")
    taken: dict[str, list[bytes]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def drain(journal: Journal) -> None:
        start.wait()
        while batch := journal.claim(4):
            taken[journal.node_id] += [e.commitment for e in batch]
            time.sleep(0.002)  # the other node's turn

    threads = [threading.Thread(target=drain, args=(j,)) for j in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not set(taken["a"]) & set(taken["b"]), "a request was claimed by both nodes"
    assert sorted(taken["a"] + taken["b"]) == sorted(r.commitment() for r in requests)
    assert taken["a"] and taken["b"], "both nodes claimed"
    assert all(first.owner_of(c) == node for node, claimed in taken.items() for c in claimed)


def test_ready_signedByAnotherLiveNode_notTakenFromIt(journal_target: Path | str) -> None:
    first, _ = _recorded(journal_target, 3)
    second = Journal(journal_target, node_id="b")
    for entry in first.claim(3):
        first.signed(entry, Status.OK, b"\x00" * 32, b"\x01" * 65)
    assert second.count_ready(10) == 0 and second.ready(10) == []
    assert first.count_ready(10) == 3 and len(first.ready(10)) == 3


def test_heartbeat_nodeWhoseLeaseRanOut_hasItsWorkReleasedAndIsFencedOff(journal_target: Path | str) -> None:
    stalled, requests = _recorded(journal_target, 4, lease=0.3)
    _joined(stalled)
    running, signed, sent, mined = stalled.claim(4)
    for entry in (signed, sent, mined):
        assert stalled.signed(entry, Status.OK, b"\x00" * 32, b"\x01" * 65)
    stalled.ready(10)
    stalled.submitted([sent.commitment], "aa" * 32)
    stalled.submitted([mined.commitment], "bb" * 32)
    stalled.mined([mined.commitment], "bb" * 32, 6)
    survivor = _joined(Journal(journal_target, node_id="b", lease_seconds=10.0))
    assert survivor.heartbeat() == [], "a live lease is not released"

    time.sleep(0.4)
    assert survivor.heartbeat() == ["a"]
    states = {e.commitment: e.state for e in survivor.entries(*State)}
    assert states[running.commitment] == State.SEEN, "its run goes back to the queue"
    assert states[signed.commitment] == State.SIGNED
    assert states[sent.commitment] == State.SIGNED, "a transaction not seen mined is sent again by another node"
    assert states[mined.commitment] == State.SUBMITTED, "a mined one waits for the listener"
    assert {survivor.owner_of(r.commitment()) for r in requests} == {None}
    assert survivor.leading, "the leader's lease passed to the survivor"

    with pytest.raises(LeaseLost):
        stalled.heartbeat()
    with pytest.raises(LeaseLost):
        stalled.fence(0.0)
    with pytest.raises(LeaseLost):
        stalled.record([], [], 7, "cd" * 32)
    # The stalled node takes nothing back and writes nothing more: every such call is refused in its transaction.
    for late in (
        lambda: stalled.claim(10),
        lambda: stalled.ready(10),
        lambda: stalled.expired_candidates(2**62),
        lambda: stalled.submitted([signed.commitment], "ee" * 32),
        lambda: stalled.signed(running, Status.OK, b"", b""),
        lambda: stalled.requeue_running(),
    ):
        with pytest.raises(LeaseLost):
            late()
    assert {survivor.owner_of(r.commitment()) for r in requests} == {None}
    taken = survivor.ready(10)
    assert {e.commitment for e in taken} == {signed.commitment, sent.commitment}
    assert [e.commitment for e in survivor.claim(10)] == [running.commitment]


def test_heartbeat_workStillCarryingAReleasedNodesId_isReleasedAgain(journal_target: Path | str) -> None:
    survivor = _joined(Journal(journal_target, node_id="b"))
    stalled, requests = _recorded(journal_target, 2, node_id="a", lease=0.2)
    _joined(stalled)
    time.sleep(0.3)
    assert survivor.heartbeat() == ["a"]
    # A write that slipped past the fence (an older process of the same id, say) leaves work under the dead id.
    survivor.db.atomic(lambda ex: ex("UPDATE requests SET state = 'running', owner = 'a'", ()))
    assert survivor.heartbeat() == [], "already released: not counted again"
    assert {e.state for e in survivor.entries(*State)} == {State.SEEN}
    assert {survivor.owner_of(r.commitment()) for r in requests} == {None}


def test_fence_leaseEndingWithinTheMargin_refusesToSendUntilRenewed(journal_target: Path | str) -> None:
    journal = _joined(Journal(journal_target, node_id="a", lease_seconds=1.0))
    assert journal.fence(0.5)
    assert not journal.fence(2.0), "less than the margin left: no send"
    unjoined = Journal(journal_target, node_id="reader")
    assert unjoined.fence(100.0), "a journal that never joined takes and checks no lease"


def test_join_restartedNode_leadsAtOnceAndItsEarlierLifeIsFencedOff(journal_target: Path | str) -> None:
    earlier = _joined(Journal(journal_target, node_id="a"))
    assert earlier.leading
    restarted = _joined(Journal(journal_target, node_id="a"))
    assert restarted.epoch == earlier.epoch + 1
    assert restarted.leading, "its own earlier life's lead is not waited out"
    with pytest.raises(LeaseLost):
        earlier.fence(0.0)
    with pytest.raises(LeaseLost):
        earlier.record([], [], 6, "cd" * 32)
    restarted.record([], [], 6, "cd" * 32)
    assert restarted.cursor() == (6, "cd" * 32)


def test_record_onlyTheLeaderWrites(journal_target: Path | str) -> None:
    leader = _joined(Journal(journal_target, node_id="a"))
    follower = _joined(Journal(journal_target, node_id="b"))
    assert leader.leading and not follower.leading
    with pytest.raises(NotLeading):
        follower.record([(_request(1), b"input", 5)], [], 5, "ab" * 32)
    assert follower.cursor() is None and follower.counts() == {}
    leader.record([(_request(1), b"input", 5)], [], 5, "ab" * 32)
    assert follower.counts() == {"seen": 1}


def test_retryLater_releasesTheRequestForAnyNode(journal_target: Path | str) -> None:
    first, _ = _recorded(journal_target, 1)
    second = Journal(journal_target, node_id="b")
    (entry,) = first.claim(1)
    assert first.retry_later(entry, 0.0, "enclave unreachable")
    (again,) = second.claim(1)
    assert again.commitment == entry.commitment and again.attempts == 1


def test_journal_olderSqliteLayout_isSetAsideAndRebuilt(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE requests (commitment TEXT PRIMARY KEY); INSERT INTO requests VALUES ('ab'); PRAGMA user_version = 3;")
    old.close()
    journal = Journal(path)
    assert journal.counts() == {} and journal.cursor() is None
    journal.record([(_request(1), b"input", 5)], [], 5, "ab" * 32)
    assert journal.counts() == {"seen": 1}
