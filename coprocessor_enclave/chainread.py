"""Chain state as of a trusted block hash, read from an untrusted JSON-RPC endpoint and verified.

Headers are checked by hash (the anchor's, then parent hashes back from it), accounts and storage slots
by Merkle proof against the header's state root, code by the account's code hash. `VerifiedState.call`
runs a read-only message call in py-evm over state fetched the same way, on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import rlp
from eth.abc import BlockHeaderAPI, StateAPI
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.exceptions import Revert
from eth.rlp.accounts import Account as _RlpAccount
from eth.rlp.headers import BlockHeader
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks import CancunVM, LondonVM, ParisVM, PragueVM, ShanghaiVM
from eth.vm.forks.cancun.blocks import CancunBlockHeader
from eth.vm.forks.london.blocks import LondonBlockHeader
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth.vm.forks.shanghai.blocks import ShanghaiBlockHeader
from eth.vm.interrupt import MissingAccountTrieNode, MissingBytecode, MissingStorageTrieNode
from eth.vm.message import Message
from eth_utils import is_address, is_checksum_address, keccak, to_canonical_address
from trie import HexaryTrie
from trie.exceptions import BadTrieProof, InvalidNode, ValidationError

from .errors import ChainDataError, CoprocessorError

RpcFn = Callable[[str, list[Any]], Any]  # (method, params) -> JSON result; raises on transport errors

ZERO = "0x" + "00" * 20
MAX_CALL_FETCHES = 512

# Anything parsing untrusted JSON or RLP may raise; all of it means the host sent bad data.
_MALFORMED = (
    ValueError, TypeError, KeyError, IndexError, AttributeError,
    rlp.exceptions.RLPException, BadTrieProof, InvalidNode, ValidationError,
)  # fmt: skip

# eth_getBlockByNumber key of each py-evm header field; the integer-valued ones are listed apart.
_HEADER_KEYS = {
    "parent_hash": "parentHash",
    "uncles_hash": "sha3Uncles",
    "coinbase": "miner",
    "state_root": "stateRoot",
    "transaction_root": "transactionsRoot",
    "receipt_root": "receiptsRoot",
    "bloom": "logsBloom",
    "difficulty": "difficulty",
    "block_number": "number",
    "gas_limit": "gasLimit",
    "gas_used": "gasUsed",
    "timestamp": "timestamp",
    "extra_data": "extraData",
    "mix_hash": "mixHash",
    "nonce": "nonce",
    "base_fee_per_gas": "baseFeePerGas",
    "withdrawals_root": "withdrawalsRoot",
    "blob_gas_used": "blobGasUsed",
    "excess_blob_gas": "excessBlobGas",
    "parent_beacon_block_root": "parentBeaconBlockRoot",
    "requests_hash": "requestsHash",
}
_INT_FIELDS = {
    "bloom", "difficulty", "block_number", "gas_limit", "gas_used", "timestamp",
    "base_fee_per_gas", "blob_gas_used", "excess_blob_gas",
}  # fmt: skip

# Newest first: the first whose marker field the block has is its header format.
_HEADER_CLASSES: tuple[tuple[str | None, type[BlockHeaderAPI]], ...] = (
    ("requestsHash", PragueBlockHeader),
    ("parentBeaconBlockRoot", CancunBlockHeader),
    ("withdrawalsRoot", ShanghaiBlockHeader),
    ("baseFeePerGas", LondonBlockHeader),
    (None, BlockHeader),
)


class CallReverted(CoprocessorError):
    """A call reverted or failed in the EVM; `data` is the revert data (empty for other failures)."""

    def __init__(self, data: bytes, reason: str = "execution reverted") -> None:
        super().__init__(f"{reason}: 0x{data.hex()}" if data else reason)
        self.data = data


@dataclass(frozen=True)
class Account:
    """An account as the state trie holds it."""

    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes


EMPTY_ACCOUNT = Account(0, 0, BLANK_ROOT_HASH, EMPTY_SHA3)


@contextmanager
def _untrusted(what: str) -> Iterator[None]:
    """Turns a parse failure of host-supplied data into ChainDataError."""
    try:
        yield
    except _MALFORMED as exc:
        raise ChainDataError(f"malformed {what}: {exc!r}") from None


def _int(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a hex quantity: {value!r}")
    number = int(value[2:], 16)
    if number < 0:
        raise ValueError(f"negative quantity: {value!r}")
    return number


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not hex data: {value!r}")
    return bytes.fromhex(value[2:])


def _address(value: str | bytes) -> bytes:
    if isinstance(value, bytes) and len(value) == 20:
        return value
    if isinstance(value, str) and is_address(value):
        mixed_case = value[2:] not in (value[2:].lower(), value[2:].upper())
        if not mixed_case or is_checksum_address(value):
            return to_canonical_address(value)
    raise ValueError(f"not an address: {value!r}")


def _slot(value: int | bytes) -> bytes:
    if isinstance(value, int) and 0 <= value < 2**256:
        return value.to_bytes(32, "big")
    if isinstance(value, bytes) and len(value) <= 32:
        return value.rjust(32, b"\0")
    raise ValueError(f"not a storage slot: {value!r}")


def verify_header(block: dict[str, Any], expected_hash: bytes) -> BlockHeaderAPI:
    """The header of an eth_getBlockByNumber result, if it hashes to `expected_hash`; else ChainDataError."""
    if not isinstance(block, dict):
        raise ChainDataError(f"no block where one with hash 0x{expected_hash.hex()} was expected")
    header_class = next(cls for key, cls in _HEADER_CLASSES if key is None or key in block)
    with _untrusted("block header"):
        fields = {}
        for name in header_class._meta.field_names:
            value = block[_HEADER_KEYS[name]]
            fields[name] = _int(value) if name in _INT_FIELDS else _bytes(value)
        header = header_class(**fields)
        actual = header.hash
    if actual != expected_hash:
        raise ChainDataError(f"block header hashes to 0x{actual.hex()}, expected 0x{expected_hash.hex()}")
    return header


def _decode_account(leaf: bytes) -> Account:
    decoded = rlp.decode(leaf, sedes=_RlpAccount)
    return Account(decoded.nonce, decoded.balance, decoded.storage_root, decoded.code_hash)


def _prove(root: bytes, key: bytes, proof: Any, what: str) -> tuple[bytes, dict[bytes, bytes]]:
    """The value under keccak-hashed `key` in the trie with `root`, and the proof's nodes by hash."""
    with _untrusted(f"{what} proof"):
        encoded = [_bytes(node) for node in proof]
        nodes = {keccak(node): node for node in encoded}
        try:
            value = HexaryTrie.get_from_proof(root, keccak(key), [rlp.decode(node) for node in encoded])
        except BadTrieProof:
            raise ChainDataError(f"{what} proof does not verify against root 0x{root.hex()}") from None
    return value, nodes


class VerifiedState:
    """Reads as of `anchor_block` (or any earlier block, verified by walking parentHash back from the anchor)."""

    def __init__(
        self,
        rpc: RpcFn,
        anchor_block: int,
        anchor_hash: bytes,
        max_blocks_back: int = 256,
        *,
        chain_id: int | None = None,
    ) -> None:
        self.anchor_block = anchor_block
        self.anchor_hash = bytes(anchor_hash)
        self.max_blocks_back = max_blocks_back
        self.chain_id = chain_id  # only the CHAINID opcode needs it; the header does not commit to it
        self._rpc = rpc
        self._headers: dict[int, BlockHeaderAPI] = {}
        self._accounts: dict[tuple[bytes, int], Account] = {}
        self._slots: dict[tuple[bytes, bytes, int], int] = {}
        self._by_hash: dict[bytes, bytes] = {}  # verified trie nodes and code, keyed by keccak: call()'s database

    def _number(self, block: int | None) -> int:
        if block is None:
            return self.anchor_block
        if not isinstance(block, int) or isinstance(block, bool):
            raise ValueError(f"block must be an int, not {block!r}")
        if block > self.anchor_block:
            raise ValueError(f"block {block} is after the anchor block {self.anchor_block}")
        if block < max(0, self.anchor_block - self.max_blocks_back):
            raise ValueError(f"block {block} is more than {self.max_blocks_back} blocks before the anchor")
        return block

    def _header_at(self, number: int) -> BlockHeaderAPI:
        """The verified header of block `number` <= anchor, walking parent hashes down from the nearest one known."""
        if self.anchor_block not in self._headers:
            self._headers[self.anchor_block] = self._fetch_header(self.anchor_block, self.anchor_hash)
        known = number
        while known not in self._headers:  # the known headers run without gaps down from the anchor
            known += 1
        for n in range(known - 1, number - 1, -1):
            self._headers[n] = self._fetch_header(n, self._headers[n + 1].parent_hash)
        return self._headers[number]

    def _fetch_header(self, number: int, expected_hash: bytes) -> BlockHeaderAPI:
        header = verify_header(self._rpc("eth_getBlockByNumber", [hex(number), False]), expected_hash)
        if header.block_number != number:
            raise ChainDataError(f"asked for block {number}, got block {header.block_number}")
        return header

    def header(self, block: int | None = None) -> BlockHeaderAPI:
        """The verified header of `block` (default: the anchor)."""
        return self._header_at(self._number(block))

    def account(self, address: str | bytes, block: int | None = None) -> Account:
        """The account at `address`, proven against the state root; an absent account reads as empty."""
        addr, number = _address(address), self._number(block)
        if (addr, number) not in self._accounts:
            self._get_proof(addr, None, number)
        return self._accounts[(addr, number)]

    def balance(self, address: str | bytes, block: int | None = None) -> int:
        """The verified balance of `address`, in wei."""
        return self.account(address, block).balance

    def nonce(self, address: str | bytes, block: int | None = None) -> int:
        """The verified nonce of `address`."""
        return self.account(address, block).nonce

    def storage(self, address: str | bytes, slot: int | bytes, block: int | None = None) -> int:
        """The verified value of storage `slot` of `address` (0 when unset)."""
        addr, key, number = _address(address), _slot(slot), self._number(block)
        if (addr, key, number) not in self._slots:
            self._get_proof(addr, key, number)
        return self._slots[(addr, key, number)]

    def code(self, address: str | bytes, block: int | None = None) -> bytes:
        """The verified code of `address` (empty for an account without code)."""
        addr, number = _address(address), self._number(block)
        code_hash = self.account(addr, number).code_hash
        if code_hash == EMPTY_SHA3:
            return b""
        if code_hash not in self._by_hash:
            with _untrusted("eth_getCode result"):
                code = _bytes(self._rpc("eth_getCode", ["0x" + addr.hex(), hex(number)]))
            if keccak(code) != code_hash:
                raise ChainDataError(f"eth_getCode returned code that does not hash to 0x{code_hash.hex()}")
            self._by_hash[code_hash] = code
        return self._by_hash[code_hash]

    def _get_proof(self, addr: bytes, key: bytes | None, number: int) -> None:
        """Fetches eth_getProof for the account (and one slot), verifies it and caches the values."""
        state_root = self._header_at(number).state_root
        keys = [] if key is None else ["0x" + key.hex()]
        result = self._rpc("eth_getProof", ["0x" + addr.hex(), keys, hex(number)])
        with _untrusted("eth_getProof result"):
            leaf, nodes = _prove(state_root, addr, result["accountProof"], "account")
            account = _decode_account(leaf) if leaf else EMPTY_ACCOUNT
            claimed = [_int(result["nonce"]), _int(result["balance"])]
            proven = [account.nonce, account.balance]
            if leaf:  # nodes disagree on the hashes they report for an absent account
                claimed += [_bytes(result["storageHash"]), _bytes(result["codeHash"])]
                proven += [account.storage_root, account.code_hash]
            if claimed != proven:
                raise ChainDataError(f"eth_getProof claims (nonce, balance, ...) {claimed}, its proof shows {proven}")
            if key is not None:
                entries = result["storageProof"]
                if len(entries) != 1:
                    raise ChainDataError(f"asked for one storage proof, got {len(entries)}")
                slot_leaf, slot_nodes = _prove(account.storage_root, key, entries[0]["proof"], "storage")
                value = rlp.decode(slot_leaf, sedes=rlp.sedes.big_endian_int) if slot_leaf else 0
                if _int(entries[0]["value"]) != value:
                    raise ChainDataError(f"eth_getProof claims slot value {entries[0]['value']}, its proof {value}")
                nodes.update(slot_nodes)
                self._slots[(addr, key, number)] = value
        self._by_hash.update(nodes)
        self._accounts[(addr, number)] = account

    def call(self, to: str | bytes, data: bytes, block: int | None = None, sender: str | bytes = ZERO, gas: int = 30_000_000) -> bytes:
        """The return data of a message call run in py-evm over verified state; CallReverted if it fails."""
        number = self._number(block)
        to_addr, from_addr = _address(to), _address(sender)
        if not isinstance(gas, int) or not 0 < gas < 2**64:
            raise ValueError(f"gas must be a positive 64-bit int, not {gas!r}")
        state = self._call_state(number)
        state.mark_address_warm(from_addr)
        state.mark_address_warm(to_addr)
        executor = state.get_transaction_executor()
        if hasattr(executor, "get_code_at_address"):  # Cancun on; Prague follows EIP-7702 delegations
            code, delegate = executor.get_code_at_address(to_addr)
        else:
            code, delegate = state.get_code(to_addr), None
        message = Message(gas=gas, to=to_addr, sender=from_addr, value=0, data=bytes(data), code=code, is_delegation=bool(delegate))
        transaction_context = state.get_transaction_context_class()(gas_price=0, origin=from_addr)
        computation = state.computation_class.apply_message(state, message, transaction_context)
        if computation.is_error:
            error = computation.error
            reason = "execution reverted" if isinstance(error, Revert) else f"call failed: {error!r}"
            raise CallReverted(bytes(computation.output), reason)
        return bytes(computation.output)

    def _call_state(self, number: int) -> StateAPI:
        """A py-evm state of block `number` for the header's fork, fetching what it reads as it reads it."""
        header = self._header_at(number)
        context = _Context(
            coinbase=header.coinbase,
            timestamp=header.timestamp,
            block_number=header.block_number,
            difficulty=header.difficulty,
            mix_hash=header.mix_hash,
            gas_limit=header.gas_limit,
            prev_hashes=self._ancestor_hashes(number),
            chain_id=self.chain_id,  # None: CHAINID raises ValueError
            base_fee_per_gas=getattr(header, "base_fee_per_gas", None),
            excess_blob_gas=getattr(header, "excess_blob_gas", None),
        )
        state_class = _state_class(_vm_class(header).get_state_class())
        return state_class(_ProofDB(self._by_hash, _Fetcher(self, number)), context, header.state_root)

    def _ancestor_hashes(self, number: int) -> Iterator[bytes]:
        """Hashes of the blocks before `number`, newest first, verified lazily as BLOCKHASH asks (at most 256)."""
        for n in range(number, max(number - 256, 0), -1):
            yield self._header_at(n).parent_hash


class _Fetcher:
    """Loads verified proofs and code into call()'s database when py-evm misses them, within a budget."""

    def __init__(self, state: VerifiedState, number: int) -> None:
        self.state = state
        self.number = number
        self.fetches = 0

    def _count(self) -> None:
        self.fetches += 1
        if self.fetches > MAX_CALL_FETCHES:
            raise ValueError(f"the call reads more than {MAX_CALL_FETCHES} accounts, slots and codes")

    def account(self, addr: bytes) -> None:
        self._count()
        self.state.account(addr, self.number)

    def storage(self, addr: bytes, slot: int) -> None:
        self._count()
        self.state.storage(addr, slot, self.number)

    def code(self, addr: bytes) -> None:
        self._count()
        self.state.code(addr, self.number)


class _ProofDB(AtomicDB):
    """call()'s node and code database: verified entries keyed by keccak, plus the fetcher that adds more."""

    def __init__(self, by_hash: dict[bytes, bytes], fetcher: _Fetcher) -> None:
        super().__init__(MemoryDB(by_hash))
        self.fetcher = fetcher


class _FetchingAccountDB(AccountDB):
    """py-evm's account database that fetches a missing account, slot or code once, then reads again."""

    def __init__(self, db: _ProofDB, state_root: bytes) -> None:
        super().__init__(db, state_root)
        self._fetcher = db.fetcher

    def _get_encoded_account(self, address: bytes, from_journal: bool = True) -> bytes:
        try:
            return super()._get_encoded_account(address, from_journal)
        except MissingAccountTrieNode:
            self._fetcher.account(address)
            return super()._get_encoded_account(address, from_journal)

    def get_storage(self, address: bytes, slot: int, from_journal: bool = True) -> int:
        try:
            return super().get_storage(address, slot, from_journal)
        except MissingStorageTrieNode:
            self._fetcher.storage(address, slot)
            return super().get_storage(address, slot, from_journal)

    def get_code(self, address: bytes) -> bytes:
        try:
            return super().get_code(address)
        except MissingBytecode:
            self._fetcher.code(address)
            return super().get_code(address)


class _Context(ExecutionContext):
    """The block context of a call; CHAINID fails clearly when the chain id was not given."""

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            raise ValueError("the call reads CHAINID: pass chain_id= to VerifiedState")
        return self._chain_id


def _vm_class(header: BlockHeaderAPI) -> type:
    """The py-evm VM for a header's format (London-format headers after the merge run as Paris)."""
    if isinstance(header, PragueBlockHeader):
        return PragueVM
    if isinstance(header, CancunBlockHeader):
        return CancunVM
    if isinstance(header, ShanghaiBlockHeader):
        return ShanghaiVM
    if isinstance(header, LondonBlockHeader):
        return ParisVM if header.difficulty == 0 else LondonVM
    raise ValueError("calls need a London or later block")


@cache
def _state_class(base: type[StateAPI]) -> type[StateAPI]:
    """`base` reading through `_FetchingAccountDB`, without installing system contracts (a call only reads them)."""
    overrides = {"account_db_class": _FetchingAccountDB, "set_system_contracts": _no_op}
    return type(f"Verified{base.__name__}", (base,), overrides)


def _no_op(self: StateAPI) -> None:
    """Replaces set_system_contracts: they are already in any real chain's state."""
