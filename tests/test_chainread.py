"""Verified chain reads against a real Anvil, honest and through a proxy that lies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_abi import decode
from eth_utils import keccak
from web3 import Web3

from coprocessor.chain import ANVIL_KEYS, TxSender, connect, contract
from coprocessor.chainread import Account, CallReverted, ChainDataError, VerifiedState, verify_header
from coprocessor.dev import devnet
from coprocessor.errors import CoprocessorError
from coprocessor_enclave import chainread
from tests.lying_rpc import LIES, LyingRpc, json_rpc

FRESH = "0x00000000000000000000000000000000C0FFEE01"  # an EOA that only ever receives ETH here
ABSENT = "0x00000000000000000000000000000000DEADBEEF"  # never touched
HOLDER = "0x00000000000000000000000000000000000A11CE"  # a "token" holder in the toy contract
BALANCE_OF = keccak(b"balanceOf(address)")[:4]

_OPS = {
    "STOP": 0x00, "SUB": 0x03, "EQ": 0x14, "SHL": 0x1B, "SHA3": 0x20, "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36,
    "CODECOPY": 0x39, "BLOCKHASH": 0x40, "TIMESTAMP": 0x42, "NUMBER": 0x43, "PREVRANDAO": 0x44, "GASLIMIT": 0x45,
    "CHAINID": 0x46, "BASEFEE": 0x48, "MSTORE": 0x52, "SLOAD": 0x54, "SSTORE": 0x55, "JUMPI": 0x57,
    "JUMPDEST": 0x5B, "RETURN": 0xF3, "REVERT": 0xFD, "CALLDATACOPY": 0x37, "RETURNDATASIZE": 0x3D,
    "RETURNDATACOPY": 0x3E, "GAS": 0x5A, "DUP1": 0x80, "STATICCALL": 0xFA,
}  # fmt: skip


def _assemble(source: str) -> bytes:
    """Bytecode from words: opcode names, integers (pushed), `@label` (pushed, 2 bytes) and `label:`."""
    words = source.split()
    labels, size = {}, 0
    for word in words:  # first pass: label offsets
        if word.endswith(":"):
            labels[word[:-1]] = size
        else:
            size += 3 if word.startswith("@") else 1 if word in _OPS else 1 + max(1, (int(word, 0).bit_length() + 7) // 8)
    code = bytearray()
    for word in words:
        if word.endswith(":"):
            continue
        if word in _OPS:
            code.append(_OPS[word])
            continue
        value, width = (labels[word[1:]], 2) if word.startswith("@") else (int(word, 0), None)
        width = width or max(1, (value.bit_length() + 7) // 8)
        code += bytes([0x5F + width]) + value.to_bytes(width, "big")
    return bytes(code)


# 64-byte calldata: sstore(word0, word1). 36 bytes: balanceOf(address), a mapping at slot 0.
# 4 bytes: (number, timestamp, blockhash(number-1), blockhash(number-3), prevrandao, chainid, basefee, gaslimit).
# Anything else reverts with 0xdeadbeef.
TOY_RUNTIME = _assemble("""
    CALLDATASIZE 64 EQ @set JUMPI
    CALLDATASIZE 36 EQ @balance JUMPI
    CALLDATASIZE 4 EQ @context JUMPI
    0xdeadbeef 224 SHL 0 MSTORE 4 0 REVERT
    set: JUMPDEST 32 CALLDATALOAD 0 CALLDATALOAD SSTORE STOP
    balance: JUMPDEST 4 CALLDATALOAD 0 MSTORE 0 32 MSTORE 64 0 SHA3 SLOAD 0 MSTORE 32 0 RETURN
    context: JUMPDEST NUMBER 0 MSTORE TIMESTAMP 32 MSTORE 1 NUMBER SUB BLOCKHASH 64 MSTORE
        3 NUMBER SUB BLOCKHASH 96 MSTORE PREVRANDAO 128 MSTORE CHAINID 160 MSTORE BASEFEE 192 MSTORE
        GASLIMIT 224 MSTORE 256 0 RETURN
""")
# Calldata (address, payload): staticcall(address, payload); returns or reverts with what the callee did.
FORWARDER_RUNTIME = _assemble("""
    0 0 32 CALLDATASIZE SUB DUP1 32 0 CALLDATACOPY 0 0 CALLDATALOAD GAS STATICCALL
    RETURNDATASIZE 0 0 RETURNDATACOPY @ok JUMPI RETURNDATASIZE 0 REVERT
    ok: JUMPDEST RETURNDATASIZE 0 RETURN
""")


def _init_code(runtime: bytes) -> bytes:
    return _assemble(f"{len(runtime)} @code 0 CODECOPY {len(runtime)} 0 RETURN code:") + runtime


def _word(value: int | str) -> bytes:
    return (int(value, 16) if isinstance(value, str) else value).to_bytes(32, "big")


def _holder_slot(holder: str) -> bytes:
    return keccak(_word(holder) + _word(0))


@dataclass
class Chain:
    """Anvil with history: FRESH got 1 then 2 more ETH; the toy's slot 1 went 7 -> 8, HOLDER's balance 1000 -> 1500."""

    url: str
    w3: Web3
    toy: str
    forwarder: str
    registry: str
    early: int  # after the first round of changes
    anchor: int
    anchor_hash: bytes
    chain_id: int

    def state(self, url: str | None = None, **kwargs: object) -> VerifiedState:
        return VerifiedState(json_rpc(url or self.url), self.anchor, self.anchor_hash, chain_id=self.chain_id, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def chain(contracts_built: None) -> Iterator[Chain]:
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = connect(url)
        sender = TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER])
        registry = sender.deploy("EnclaveRegistry", sender.address, True, [sender.address], 1)
        toy = sender.transact(None, _init_code(TOY_RUNTIME))["contractAddress"]
        forwarder = sender.transact(None, _init_code(FORWARDER_RUNTIME))["contractAddress"]
        for eth, slot1, held in ((1, 7, 1000), (2, 8, 1500)):
            sender.transact(FRESH, b"", value=eth * 10**18)
            sender.transact(toy, _word(1) + _word(slot1))
            sender.transact(toy, _holder_slot(HOLDER) + _word(held))
            if eth == 1:
                early = w3.eth.block_number
        block = w3.eth.get_block("latest")
        yield Chain(url, w3, toy, forwarder, registry, early, block.number, bytes(block.hash), w3.eth.chain_id)
    finally:
        devnet.stop(anvil)


@pytest.fixture(scope="module")
def liar(chain: Chain) -> Iterator[LyingRpc]:
    with LyingRpc(chain.url) as proxy:
        yield proxy


@pytest.fixture
def lying(liar: LyingRpc) -> Iterator[LyingRpc]:
    """The proxy, honest again after the test."""
    liar.lies_told = 0
    yield liar
    liar.lie = None


def test_verify_header_matches_anvil_hash(chain: Chain) -> None:
    block = json_rpc(chain.url)("eth_getBlockByNumber", [hex(chain.anchor), False])
    header = verify_header(block, chain.anchor_hash)
    assert header.block_number == chain.anchor
    assert header.state_root == bytes.fromhex(block["stateRoot"][2:])


def test_verify_header_wrong_hash_raises(chain: Chain) -> None:
    block = json_rpc(chain.url)("eth_getBlockByNumber", [hex(chain.anchor), False])
    with pytest.raises(ChainDataError, match="hashes to"):
        verify_header(block, b"\1" * 32)


@pytest.mark.parametrize("damage", ["missing", "not_hex", "none"])
def test_verify_header_malformed_raises(chain: Chain, damage: str) -> None:
    block = json_rpc(chain.url)("eth_getBlockByNumber", [hex(chain.anchor), False])
    if damage == "missing":
        del block["gasUsed"]
    elif damage == "not_hex":
        block["timestamp"] = 12
    else:
        block = None
    with pytest.raises(ChainDataError):
        verify_header(block, chain.anchor_hash)


def test_header_earlier_block_walks_parent_hashes(chain: Chain) -> None:
    state = chain.state()
    header = state.header(chain.early)
    assert header.hash == bytes(chain.w3.eth.get_block(chain.early).hash)
    assert state.header().hash == chain.anchor_hash


def test_header_after_anchor_raises_value_error(chain: Chain) -> None:
    with pytest.raises(ValueError, match="after the anchor"):
        chain.state().header(chain.anchor + 1)


def test_header_beyond_max_blocks_back_raises_value_error(chain: Chain) -> None:
    with pytest.raises(ValueError, match="before the anchor"):
        chain.state(max_blocks_back=2).balance(FRESH, chain.anchor - 3)


def test_state_wrong_anchor_hash_raises(chain: Chain) -> None:
    state = VerifiedState(json_rpc(chain.url), chain.anchor, keccak(b"not the anchor"))
    with pytest.raises(ChainDataError):
        state.balance(FRESH)


def test_chain_data_error_is_a_coprocessor_error() -> None:
    assert issubclass(ChainDataError, CoprocessorError)


def test_account_matches_web3(chain: Chain) -> None:
    state, w3 = chain.state(), chain.w3
    for address in (FRESH, chain.toy, TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER]).address):
        account = state.account(address)
        assert account.balance == w3.eth.get_balance(address, chain.anchor)
        assert account.nonce == w3.eth.get_transaction_count(address, chain.anchor)
        assert state.balance(address) == account.balance and state.nonce(address) == account.nonce


def test_balance_earlier_block_has_earlier_value(chain: Chain) -> None:
    state = chain.state()
    assert state.balance(FRESH, chain.early) == 10**18
    assert state.balance(FRESH) == 3 * 10**18


def test_account_absent_is_empty(chain: Chain) -> None:
    state = chain.state()
    assert state.account(ABSENT) == Account(0, 0, keccak(b"\x80"), keccak(b""))
    assert state.code(ABSENT) == b""
    assert state.storage(ABSENT, 0) == 0


@pytest.mark.parametrize("address", ["0x1234", "0x00000000000000000000000000000000c0ffeE01", b"\1" * 19])
def test_account_bad_address_raises_value_error(chain: Chain, address: str | bytes) -> None:
    with pytest.raises(ValueError, match="not an address"):
        chain.state().account(address)


def test_storage_matches_web3(chain: Chain) -> None:
    state, w3 = chain.state(), chain.w3
    assert state.storage(chain.toy, 1) == 8 == int.from_bytes(w3.eth.get_storage_at(chain.toy, 1, chain.anchor))
    assert state.storage(chain.toy, _holder_slot(HOLDER)) == 1500
    for slot in (0, 1, 2):  # the registry's own layout, whatever it is
        for address in (chain.registry, chain.toy):
            assert state.storage(address, slot) == int.from_bytes(w3.eth.get_storage_at(address, slot, chain.anchor))


def test_storage_earlier_block_has_earlier_value(chain: Chain) -> None:
    state = chain.state()
    assert state.storage(chain.toy, 1, chain.early) == 7
    assert state.storage(chain.toy, _holder_slot(HOLDER), chain.early) == 1000


def test_storage_empty_slot_is_zero(chain: Chain) -> None:
    assert chain.state().storage(chain.toy, 12345) == 0


def test_code_matches_web3(chain: Chain) -> None:
    state = chain.state()
    assert state.code(chain.toy) == TOY_RUNTIME
    assert state.code(chain.registry) == bytes(chain.w3.eth.get_code(chain.registry, chain.anchor))
    assert state.code(FRESH) == b""


@pytest.mark.parametrize("lie", ["balance", "forged_balance", "drop_node", "alter_node"])
def test_balance_lying_rpc_raises(chain: Chain, lying: LyingRpc, lie: str) -> None:
    lying.lie = lie
    with pytest.raises(ChainDataError):
        chain.state(lying.url).balance(FRESH)
    assert lying.lies_told > 0


@pytest.mark.parametrize("lie", ["storage_value", "forged_storage"])
def test_storage_lying_rpc_raises(chain: Chain, lying: LyingRpc, lie: str) -> None:
    lying.lie = lie
    with pytest.raises(ChainDataError):
        chain.state(lying.url).storage(chain.toy, 1)
    assert lying.lies_told > 0


def test_code_lying_rpc_raises(chain: Chain, lying: LyingRpc) -> None:
    lying.lie = "code"
    with pytest.raises(ChainDataError, match="does not hash"):
        chain.state(lying.url).code(chain.toy)
    assert lying.lies_told > 0


@pytest.mark.parametrize("lie", ["timestamp", "state_root", "other_block"])
def test_header_lying_rpc_raises(chain: Chain, lying: LyingRpc, lie: str) -> None:
    lying.lie = lie
    with pytest.raises(ChainDataError):
        chain.state(lying.url).header(chain.early)
    assert lying.lies_told > 0


def test_lying_rpc_every_lie_is_tested() -> None:
    tested = {"balance", "forged_balance", "drop_node", "alter_node", "storage_value", "forged_storage", "code"}
    # block_hash: tests/test_chain_reads_remote.py (a quorum of another chain's RPCs disagreeing)
    assert tested | {"timestamp", "state_root", "other_block", "block_hash"} == set(LIES)


def test_lying_rpc_honest_proxy_verifies(chain: Chain, lying: LyingRpc) -> None:
    assert chain.state(lying.url).balance(FRESH) == 3 * 10**18
    assert lying.lies_told == 0


def _eth_call(chain: Chain, to: str, data: bytes, block: int) -> bytes:
    return bytes(chain.w3.eth.call({"to": Web3.to_checksum_address(to), "data": data}, block))


def test_call_balance_of_matches_eth_call(chain: Chain) -> None:
    state = chain.state()
    data = BALANCE_OF + _word(HOLDER)
    assert state.call(chain.toy, data) == _eth_call(chain, chain.toy, data, chain.anchor) == _word(1500)
    assert state.call(chain.toy, data, chain.early) == _word(1000)


def test_call_block_context_comes_from_verified_header(chain: Chain) -> None:
    state = chain.state()
    result = state.call(chain.toy, b"ctx!")
    types = ["uint256", "uint256", "bytes32", "bytes32", "bytes32", "uint256", "uint256", "uint256"]
    number, timestamp, parent, great_grandparent, randao, chain_id, base_fee, gas_limit = decode(types, result)
    header = state.header()
    assert (number, timestamp, chain_id, base_fee, gas_limit) == (
        chain.anchor,
        header.timestamp,
        chain.chain_id,
        header.base_fee_per_gas,
        header.gas_limit,
    )
    assert parent == header.parent_hash == bytes(chain.w3.eth.get_block(chain.anchor - 1).hash)
    assert great_grandparent == bytes(chain.w3.eth.get_block(chain.anchor - 3).hash)
    assert randao == header.mix_hash
    assert result == _eth_call(chain, chain.toy, b"ctx!", chain.anchor)


def test_call_solidity_views_match_eth_call(chain: Chain) -> None:
    state = chain.state()
    registry = contract(chain.w3, "EnclaveRegistry", chain.registry)
    deployer = TxSender(chain.w3, ANVIL_KEYS[devnet.DEPLOYER]).address
    for function, args in (("domainSeparator", []), ("eip712Domain", []), ("isActive", [deployer]), ("isAttestor", [deployer])):
        data = bytes.fromhex(registry.encode_abi(function, args=args)[2:])
        assert state.call(chain.registry, data) == _eth_call(chain, chain.registry, data, chain.anchor), function


def test_call_through_another_contract_matches_eth_call(chain: Chain) -> None:
    state = chain.state()
    for to, payload in ((chain.toy, BALANCE_OF + _word(HOLDER)), (chain.registry, keccak(b"domainSeparator()")[:4])):
        data = _word(to) + payload
        assert state.call(chain.forwarder, data) == _eth_call(chain, chain.forwarder, data, chain.anchor)
    with pytest.raises(CallReverted) as caught:
        state.call(chain.forwarder, _word(chain.toy) + b"\1\2")
    assert caught.value.data == bytes.fromhex("deadbeef")


def test_call_revert_raises_call_reverted(chain: Chain) -> None:
    with pytest.raises(CallReverted) as caught:
        chain.state().call(chain.toy, b"\1\2")
    assert caught.value.data == bytes.fromhex("deadbeef")


def test_call_to_absent_account_returns_empty(chain: Chain) -> None:
    assert chain.state().call(ABSENT, b"anything") == b""


def test_call_over_fetch_budget_raises_value_error(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chainread, "MAX_CALL_FETCHES", 4)  # forwarder and toy: 2 accounts, 2 codes, 1 slot
    with pytest.raises(ValueError, match="more than 4"):
        chain.state().call(chain.forwarder, _word(chain.toy) + BALANCE_OF + _word(HOLDER))


def test_call_bad_gas_raises_value_error(chain: Chain) -> None:
    with pytest.raises(ValueError, match="gas"):
        chain.state().call(chain.toy, b"", gas=0)


def test_call_without_chain_id_reading_chainid_raises_value_error(chain: Chain) -> None:
    state = VerifiedState(json_rpc(chain.url), chain.anchor, chain.anchor_hash)
    assert state.call(chain.toy, BALANCE_OF + _word(HOLDER)) == _word(1500)
    with pytest.raises(ValueError, match="chain_id"):
        state.call(chain.toy, b"ctx!")


@pytest.mark.parametrize("lie", ["forged_balance", "drop_node", "forged_storage", "code"])
def test_call_lying_rpc_raises(chain: Chain, lying: LyingRpc, lie: str) -> None:
    lying.lie = lie
    with pytest.raises(ChainDataError):
        chain.state(lying.url).call(chain.toy, BALANCE_OF + _word(HOLDER))
    assert lying.lies_told > 0
