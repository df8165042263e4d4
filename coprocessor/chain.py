"""Talking to the chain: connections, one account's transactions, deployment records, revert reasons."""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import logging
import threading
import time
import urllib.parse
import weakref
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, cast

import coincurve
import rlp
from eth_abi import decode
from eth_account import Account
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError

from .dev.toolchain import artifact, npm_errors
from .errors import ChainError
from .keepalive import KeptAlive

log = logging.getLogger(__name__)

# Anvil's well-known, publicly documented development keys (mnemonic "test test ... junk").
# They guard nothing: every Foundry user has them. Never use them off a local chain.
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)

_CONTRACTS_WITH_ERRORS = (
    "Coprocessor",
    "EnclaveRegistry",
    "TemplateRegistry",
    "KeyRegistry",
    "Subscriptions",
    "Sponsorships",
    "ExampleConsumer",
    "ScheduledConsumer",
    "ExactGasCall",
    "SignedQuoteConsumer",
    "SignedFeeHook",
    "CoprocessorFeeHook",
    "CoprocessorGatedAction",
)


def connect(rpc_url: str, timeout: float = 30.0) -> Web3:
    """A Web3 over HTTP; raises ChainError if nothing answers."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - a cheap call that proves the endpoint answers
    except Exception as exc:
        raise ChainError(f"no JSON-RPC endpoint answers at {rpc_url}: {exc}") from None
    return w3


class JsonRpc:
    """JSON-RPC over HTTP(S) on a kept-alive connection per thread: no middleware, no formatters.

    The node's hot paths (logs, receipts, nonces, sends: several calls a response) spent more
    CPU in web3's provider and `requests` (proxy lookups in the environment, header parsing)
    than in anything else. Transport failures raise OSError or http.client.HTTPException.
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ChainError(f"RPC URL {url!r} is not http(s)://host[:port][/path]")
        self._path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        self._headers = {"Content-Type": "application/json"}
        if parsed.username:  # basic auth in the URL, as providers' URLs sometimes carry it
            credentials = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        self._http = KeptAlive(parsed.hostname, parsed.port, parsed.scheme == "https", timeout)
        self._ids = itertools.count(1)

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """The whole JSON-RPC response (`result` or `error`)."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()
        # A transaction is never sent twice by the transport: after a send the pool may have taken, the
        # caller tracks it by its hash instead (`TxSender.send_at`).
        status, _, raw = self._http.request("POST", self._path, body, self._headers, retry=method != "eth_sendRawTransaction")
        if status != 200:
            raise ChainError(f"{method}: HTTP {status} from the RPC: {raw[:200].decode(errors='replace')}")
        answer = json.loads(raw)
        if not isinstance(answer, dict):
            raise ChainError(f"{method}: the RPC answered {type(answer).__name__}, not a JSON-RPC response")
        return answer


_transports: weakref.WeakKeyDictionary[Web3, JsonRpc | None] = weakref.WeakKeyDictionary()
_transports_lock = threading.Lock()


def rpc_request(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    """One JSON-RPC call to `w3`'s endpoint, on the lean transport where it is HTTP(S); the whole response."""
    if w3 not in _transports:
        with _transports_lock:
            if w3 not in _transports:
                endpoint = str(getattr(w3.provider, "endpoint_uri", "") or "")
                timeout = float((getattr(w3.provider, "_request_kwargs", None) or {}).get("timeout", 30.0))
                _transports[w3] = JsonRpc(endpoint, timeout) if endpoint.startswith(("http://", "https://")) else None
    transport = _transports[w3]
    if transport is None:  # another provider (IPC, a test's): through web3
        return dict(w3.provider.make_request(method, params))  # type: ignore[arg-type]
    return transport.request(method, params)


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call without web3's provider and formatters (hot paths: logs and receipts by the thousand)."""
    response = rpc_request(w3, method, params)
    if "error" in response:
        raise ChainError(f"{method} failed: {response['error']}")
    return response.get("result")


def raw_log(entry: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC log with its fields decoded: bytes topics, data and hashes, int numbers."""
    return {
        "address": entry["address"],
        "topics": [bytes.fromhex(t[2:]) for t in entry["topics"]],
        "data": bytes.fromhex(entry["data"][2:]),
        "blockNumber": int(entry["blockNumber"], 16),
        "blockHash": bytes.fromhex(entry["blockHash"][2:]),
        "transactionHash": bytes.fromhex(entry["transactionHash"][2:]),
    }


def contract(w3: Web3, name: str, address: str) -> Contract:
    """A web3 contract handle from the forge artifact of `name`."""
    return w3.eth.contract(address=to_checksum_address(address), abi=artifact(name)["abi"])


@cache
def _error_selectors() -> dict[bytes, tuple[str, list[str]]]:
    """Every custom error ours and v4-core's contracts declare (libraries included), by selector."""
    items = [item for name in _CONTRACTS_WITH_ERRORS for item in artifact(name)["abi"] if item["type"] == "error"]
    items += npm_errors("@uniswap/v4-core")  # PoolManager's, its libraries' (Pool, Hooks, ...) and CustomRevert.WrappedError
    selectors = {}
    for item in items:
        types = [arg["type"] if arg["type"] != "tuple" else _tuple_type(arg) for arg in item["inputs"]]
        selectors[function_abi_to_4byte_selector(item)] = (item["name"], types)
    return selectors


def _tuple_type(arg: dict[str, Any]) -> str:
    return "(" + ",".join(c["type"] for c in arg["components"]) + ")"


def decode_revert(data: bytes | str | None, depth: int = 0) -> str:
    """A readable reason for revert data: `Name(args)` for our and v4-core's custom errors, v4's
    `WrappedError` (a hook or callee that reverted) with the reason it wraps decoded too."""
    if data is None:
        return "reverted without data"
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
    if len(raw) < 4:
        return "reverted without data"
    if raw[:4] == keccak(b"Error(string)")[:4]:
        return str(decode(["string"], raw[4:])[0])
    known = _error_selectors().get(raw[:4])
    if known is None:
        return f"reverted with unknown data 0x{raw.hex()}"
    name, types = known
    try:
        args = decode(types, raw[4:])
    except Exception:
        return name
    if name == "WrappedError" and len(args) == 4 and depth < 4:  # (target, selector, reason, details)
        target, selector, reason, details = args
        wrapped = f"{name}: {target} reverted in 0x{bytes(selector).hex()} with {decode_revert(reason, depth + 1)}"
        return wrapped + (f" ({decode_revert(details, depth + 1)})" if details else "")
    shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in args)
    return f"{name}({shown})"


def _revert_reason(exc: Exception) -> str:
    if isinstance(exc, ContractCustomError | ContractLogicError) and exc.data:
        return decode_revert(exc.data if isinstance(exc.data, (str, bytes)) else str(exc.data))
    return str(exc)


def sign_eip1559(key: coincurve.PrivateKey, chain_id: int, nonce: int, tip: int, max_fee: int, gas: int, to: str, data: bytes) -> bytes:
    """A signed EIP-1559 transaction (no value, no access list), as eth_account would make it.

    The node signs every fulfil with this: eth_account's general path validates and converts each
    field through several layers and takes ~1.8 ms a transaction, a tenth of an idle request's time.
    `tests/test_submitter.py` checks the bytes equal eth_account's.
    """
    recipient = bytes.fromhex(to.removeprefix("0x"))
    if len(recipient) != 20:  # empty would make a contract creation
        raise ValueError(f"recipient {to!r} is not a 20-byte address")
    fields = [chain_id, nonce, tip, max_fee, gas, recipient, 0, data, []]
    digest = keccak(b"\x02" + rlp.encode(fields))
    signature = key.sign_recoverable(digest, hasher=None)
    r, s, y_parity = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    return b"\x02" + bytes(rlp.encode([*fields, y_parity, r, s]))


class TxSender:
    """One account's transactions: a local nonce, EIP-1559 fees and receipt polling. Thread-safe."""

    def __init__(self, w3: Web3, private_key: str) -> None:
        self.w3 = w3
        self.account = Account.from_key(private_key)
        self.address: str = self.account.address
        self.chain_id = w3.eth.chain_id
        self._signing_key = coincurve.PrivateKey(bytes(self.account.key))
        self._lock = threading.Lock()
        self._nonce: int | None = None

    def resync_nonce(self) -> None:
        """Forget the local nonce; the next send asks the chain (after a dropped or replaced tx)."""
        with self._lock:
            self._nonce = None

    def estimate(self, to: str | None, data: bytes, value: int = 0, block: str = "latest") -> int:
        """Gas for a call on `block` ("pending": as the next block will run it, with its timestamp), or ChainError
        with the decoded revert reason."""
        tx: dict[str, Any] = {"from": self.address, "data": data, "value": value}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        try:
            return self.w3.eth.estimate_gas(cast(Any, tx), cast(Any, block))
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            raise ChainError(_revert_reason(exc)) from None

    def send(self, to: str | None, data: bytes, value: int = 0, gas: int | None = None) -> bytes:
        """Signs and sends; returns the transaction hash. Estimates gas (with headroom) when not given."""
        if gas is None:
            gas = self.estimate(to, data, value) * 6 // 5 + 10_000
        base_fee = self.w3.eth.get_block("latest")["baseFeePerGas"]
        tip = 10**9
        with self._lock:
            if self._nonce is None:
                self._nonce = self.w3.eth.get_transaction_count(cast(Any, self.address), "pending")
            tx = {
                "chainId": self.chain_id,
                "nonce": self._nonce,
                "data": data,
                "value": value,
                "gas": gas,
                "maxFeePerGas": base_fee * 2 + tip,
                "maxPriorityFeePerGas": tip,
            }
            if to is not None:
                tx["to"] = to_checksum_address(to)
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception:
                self._nonce = None  # the chain may or may not have taken it: ask again next time
                raise
            self._nonce += 1
        return bytes(tx_hash)

    def nonce_at(self, block: str) -> int:
        """The account's transaction count at `block` ("latest" or "pending")."""
        return int(rpc(self.w3, "eth_getTransactionCount", [self.address, block]), 16)

    def send_at(self, nonce: int, to: str, data: bytes, gas: int, max_fee: int, tip: int) -> bytes:
        """Signs and sends at an explicit nonce (the caller manages nonces); ChainError with the node's reason."""
        raw = sign_eip1559(self._signing_key, self.chain_id, nonce, tip, max_fee, gas, to, data)
        tx_hash = keccak(raw)
        try:
            response = rpc_request(self.w3, "eth_sendRawTransaction", ["0x" + raw.hex()])
        except (OSError, http.client.HTTPException) as exc:
            # It may or may not have reached the pool. Its hash is known either way: the submitter tracks
            # it, and sends it again at its nonce if the chain has not heard of it (never at another nonce).
            log.warning("sending tx 0x%s at nonce %d: %s; tracking it by its hash", tx_hash.hex()[:12], nonce, exc)
            return tx_hash
        if "error" in response:
            error = response["error"]
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            if "already known" in message.lower():  # this very transaction is in the pool
                return tx_hash
            raise ChainError(message)
        return bytes.fromhex(str(response["result"]).removeprefix("0x"))

    def receipt(self, tx_hash: bytes) -> Any | None:
        """The receipt (status, blockNumber, gasUsed, transactionHash, decoded logs), or None while not mined."""
        found = rpc(self.w3, "eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
        if found is None:
            return None
        return {
            "status": int(found["status"], 16),
            "blockNumber": int(found["blockNumber"], 16),
            "gasUsed": int(found["gasUsed"], 16),
            "transactionHash": bytes.fromhex(found["transactionHash"][2:]),
            "logs": [raw_log(entry) for entry in found["logs"]],
        }

    def lookup(self, tx_hash: bytes) -> Any | None:
        """The transaction if the node knows it (pending in its pool, or mined), else None."""
        try:
            return self.w3.eth.get_transaction(cast(Any, tx_hash))
        except TransactionNotFound:
            return None

    def wait(self, tx_hash: bytes, timeout: float = 60.0) -> Any:
        """Polls for the receipt (Anvil may not have it the instant the send returns)."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                receipt = self.w3.eth.get_transaction_receipt(cast(Any, tx_hash))
                if receipt is not None:
                    return receipt
            except Exception:  # web3 raises TransactionNotFound while pending
                pass
            if time.monotonic() > deadline:
                raise ChainError(f"no receipt for 0x{tx_hash.hex()} after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def transact(self, to: str | None, data: bytes, value: int = 0, gas: int | None = None) -> Any:
        """Sends and waits; raises ChainError if the transaction reverted."""
        receipt = self.wait(self.send(to, data, value, gas))
        if receipt["status"] != 1:
            raise ChainError(f"transaction 0x{bytes(receipt['transactionHash']).hex()} reverted")
        return receipt

    def deploy(self, name: str, *args: Any) -> str:
        """Deploys the forge artifact `name` with constructor `args`; returns its address."""
        return self.deploy_artifact(artifact(name), *args)

    def deploy_artifact(self, art: dict[str, Any], *args: Any) -> str:
        """Deploys a compiled artifact (`abi`, `bytecode.object`) with constructor `args`; returns its address."""
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]["object"])
        data = bytes.fromhex(factory._encode_constructor_data(*args).removeprefix("0x"))
        receipt = self.transact(None, data)
        return to_checksum_address(receipt["contractAddress"])

    def call_function(self, handle: Contract, function: str, *args: Any, value: int = 0) -> Any:
        """Sends `handle.function(*args)` and waits for it to succeed."""
        data = bytes.fromhex(handle.encode_abi(function, args=list(args)).removeprefix("0x"))
        return self.transact(handle.address, data, value)


@dataclass(frozen=True)
class Deployment:
    """Addresses of one deployment of the protocol, saved as JSON for the node and the CLI."""

    chain_id: int
    registry: str
    template_registry: str
    coprocessor: str
    key_registry: str
    subscriptions: str
    sponsorships: str
    consumer: str
    start_block: int

    def save(self, path: Path) -> None:
        """Writes the record."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Reads a record written by `save`; a record from an older deployment without every field is refused."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ChainError(f"no deployment record at {path}: run `coprocessor deploy` or `coprocessor dev`") from None
        except json.JSONDecodeError as exc:
            raise ChainError(f"deployment record at {path} is not JSON: {exc}") from None
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise ChainError(
                f"deployment record at {path} lacks {', '.join(missing)}: it predates this version of the"
                " contracts; redeploy with `coprocessor deploy` or `coprocessor dev`"
            )
        return cls(**{name: data[name] for name in names})

    def check_on(self, w3: Web3, *contracts: str) -> None:
        """Raises ChainError, saying what to do, unless `w3` is this deployment's chain and holds `contracts`
        (field names: "coprocessor", "registry", ...): a stale record otherwise surfaces as a transaction to
        nowhere that "succeeds", or an undecodable call."""
        chain_id = w3.eth.chain_id
        if chain_id != self.chain_id:
            raise ChainError(
                f"the deployment record is for chain {self.chain_id}, but the RPC serves chain {chain_id}:"
                " pass that chain's --rpc, or this chain's --deployment"
            )
        for name in contracts:
            address = getattr(self, name)
            if not w3.eth.get_code(to_checksum_address(address)):
                raise ChainError(
                    f"no {_CONTRACT_NAMES[name]} at {address} on chain {chain_id}: the deployment record is not of this"
                    " chain's contracts (was Anvil restarted?); run `coprocessor deploy` or `coprocessor dev` again"
                )


_CONTRACT_NAMES = {
    "registry": "EnclaveRegistry",
    "template_registry": "TemplateRegistry",
    "coprocessor": "Coprocessor",
    "key_registry": "KeyRegistry",
    "subscriptions": "Subscriptions",
    "sponsorships": "Sponsorships",
    "consumer": "ExampleConsumer",
}
