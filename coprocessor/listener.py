"""Finds `RequestSubmitted` logs by block range, with confirmations, reorg detection and a durable cursor."""

from __future__ import annotations

import logging

from eth_abi import decode
from eth_utils import to_checksum_address
from web3 import Web3

from .journal import Journal
from coprocessor_enclave.protocol import REQUEST_SUBMITTED_TOPIC, Request

log = logging.getLogger(__name__)

_DATA_TYPES = ["bytes", "bytes32", "uint32", "uint96", "uint64", "uint64", "bytes32"]


def decode_request_submitted(entry: dict) -> tuple[Request, bytes]:
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
    """Moves the journal's cursor forward over confirmed blocks, recording every request it finds."""

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

    def _block_hash(self, number: int) -> str | None:
        block = self.w3.eth.get_block(number)
        return None if block is None else bytes(block["hash"]).hex()

    def _check_reorg(self, cursor: tuple[int, str]) -> tuple[int, str]:
        """Walks back from the cursor until the stored hash matches the chain again."""
        block, block_hash = cursor
        if self._block_hash(block) == block_hash:
            return cursor
        # The cursor's block was replaced. Rescanning is idempotent, so step back a safe depth
        # rather than search for the exact fork point.
        common = max(block - self.reorg_depth, self.start_block - 1, 0)
        common_hash = self._block_hash(common) or ""
        dropped = self.journal.rewind(common, common_hash)
        log.warning("reorg detected at block %d: rescanning from %d, %d unsettled requests dropped", block, common, dropped)
        return common, common_hash

    def poll(self) -> int:
        """Scans new confirmed blocks; returns how many requests were recorded."""
        head = self.w3.eth.block_number - self.confirmations
        cursor = self.journal.cursor()
        if cursor is not None:
            cursor = self._check_reorg(cursor)
        next_block = self.start_block if cursor is None else cursor[0] + 1
        found = 0
        while next_block <= head:
            to_block = min(head, next_block + self.max_range - 1)
            logs = self.w3.eth.get_logs(
                {
                    "address": self.coprocessor,
                    "fromBlock": next_block,
                    "toBlock": to_block,
                    "topics": ["0x" + REQUEST_SUBMITTED_TOPIC.hex()],
                }
            )
            seen = []
            for entry in logs:
                request, input_data = decode_request_submitted(entry)
                seen.append((request, input_data, entry["blockNumber"]))
            to_hash = self._block_hash(to_block) or ""
            self.journal.record(seen, to_block, to_hash)
            found += len(seen)
            next_block = to_block + 1
        return found
