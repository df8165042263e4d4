"""Follows the Coprocessor's logs over confirmed blocks: requests, settlements, cancels; finds reorgs by hash."""

from __future__ import annotations

import logging
from typing import Any

from eth_abi import decode
from eth_utils import to_checksum_address
from web3 import Web3

from coprocessor_enclave.protocol import (
    REQUEST_CANCELLED_TOPIC,
    REQUEST_FULFILLED_TOPIC,
    REQUEST_SUBMITTED_TOPIC,
    Request,
)

from ..chain import raw_log, rpc
from .heads import Head
from .journal import Journal, Settlement

log = logging.getLogger(__name__)

_DATA_TYPES = ["bytes", "bytes32", "uint32", "uint96", "uint64", "uint64", "bytes32"]
_TOPICS = ["0x" + t.hex() for t in (REQUEST_SUBMITTED_TOPIC, REQUEST_FULFILLED_TOPIC, REQUEST_CANCELLED_TOPIC)]


def decode_request_submitted(entry: dict[str, Any]) -> tuple[Request, bytes]:
    """The request and its input from one `RequestSubmitted` log."""
    topics = [bytes(t) for t in entry["topics"]]
    input_data, input_hash, gas, fee, deadline, anchor_block, anchor_hash = decode(_DATA_TYPES, bytes(entry["data"]))
    request = Request(
        request_id=topics[1],
        consumer=to_checksum_address(topics[2][12:]),
        template_id=topics[3],
        input_hash=input_hash,
        callback_gas_limit=gas,
        fee=fee,
        deadline=deadline,
        anchor_block=anchor_block,
        anchor_hash=anchor_hash,
    )
    return request, input_data


class Listener:
    """Moves the journal's cursor forward over confirmed blocks, recording what the chain did.

    The journal's settled and expired states come from these logs, never from the node's own
    receipts, so a reorg that removes them sends the request back to be settled again.
    """

    def __init__(
        self,
        w3: Web3,
        journal: Journal,
        coprocessor: str,
        start_block: int = 0,
        confirmations: int = 0,
        max_range: int = 2_000,
        reorg_depth: int = 64,
    ) -> None:
        self.w3 = w3
        self.journal = journal
        self.coprocessor = to_checksum_address(coprocessor)
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.reorg_depth = reorg_depth
        self.reorgs = 0

    def _block_hash(self, number: int) -> str | None:
        """The canonical hash at `number`, None above the head (e.g. after Anvil reloads older state).

        Any error (the RPC is down) propagates and the intake retries: taken for "no such block", an
        outage looked like a reorg deeper than every known block and rewound the journal `reorg_depth` blocks.
        """
        block = rpc(self.w3, "eth_getBlockByNumber", [hex(number), False])
        return None if block is None else str(block["hash"]).removeprefix("0x")

    def _check_reorg(self, cursor: tuple[int, str], head: Head | None) -> tuple[int, str]:
        """Returns the cursor, or after a reorg the fork point, having rewound the journal to it."""
        block, block_hash = cursor
        if head is not None and head.number == block + 1 + self.confirmations and self.confirmations == 0:
            if head.parent_hash == block_hash:
                return cursor  # the common case: the new head builds on what we processed
        if self._block_hash(block) == block_hash:
            return cursor
        # Canonical-ness is monotone in height: bisect the journal's known blocks for the highest survivor.
        known = self.journal.known_blocks()  # highest first
        low, high = 0, len(known)
        while low < high:
            mid = (low + high) // 2
            if self._block_hash(known[mid][0]) == known[mid][1]:
                high = mid
            else:
                low = mid + 1
        if low < len(known):
            fork, fork_hash = known[low]
        else:  # deeper than anything remembered: step back the configured depth
            fork = max(block - self.reorg_depth, self.start_block - 1, 0)
            fork_hash = self._block_hash(fork) or ""
        changed = self.journal.rewind(fork, fork_hash)
        self.reorgs += 1
        log.warning("reorg below block %d: rescanning from %d; %d journal entries rewound", block, fork + 1, changed)
        return fork, fork_hash

    def poll(self, head: Head | None = None) -> int:
        """Scans new confirmed blocks up to `head` (or the chain's head); returns how many requests were recorded."""
        tip = head.number if head is not None else self.w3.eth.block_number
        target = tip - self.confirmations
        cursor = self.journal.cursor()
        if cursor is not None:
            cursor = self._check_reorg(cursor, head)
        next_block = self.start_block if cursor is None else cursor[0] + 1
        found = 0
        while next_block <= target:
            to_block = min(target, next_block + self.max_range - 1)
            logs = [
                raw_log(entry)
                for entry in rpc(
                    self.w3,
                    "eth_getLogs",
                    [{"address": self.coprocessor, "fromBlock": hex(next_block), "toBlock": hex(to_block), "topics": [_TOPICS]}],
                )
            ]
            seen, settled, blocks = [], [], {}
            for entry in logs:
                topic = bytes(entry["topics"][0])
                number = entry["blockNumber"]
                blocks[number] = bytes(entry["blockHash"]).hex()
                if topic == REQUEST_SUBMITTED_TOPIC:
                    request, input_data = decode_request_submitted(entry)
                    seen.append((request, input_data, number))
                else:
                    cancelled = topic == REQUEST_CANCELLED_TOPIC
                    tx_hash = bytes(entry["transactionHash"]).hex()
                    settled.append(Settlement(bytes(entry["topics"][1]), number, tx_hash, cancelled))
            if head is not None and to_block == head.number:
                to_hash = head.hash
            else:
                to_hash = self._block_hash(to_block) or ""
            self.journal.record(seen, settled, to_block, to_hash, blocks.items(), keep_blocks=self.reorg_depth * 4)
            found += len(seen)
            next_block = to_block + 1
        return found
