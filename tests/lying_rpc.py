"""A loopback JSON-RPC proxy in front of a real node that lies on request, and a small JSON-RPC client.

with LyingRpc(anvil_url) as proxy:
    proxy.lie = "balance"        # any of LIES; None answers honestly
    proxy.stall_seconds = 30     # or: every answer comes this late
    use(proxy.url)
    assert proxy.lies_told > 0   # the lie was actually served
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import rlp
from eth_utils import keccak

LIES = {
    "balance": "eth_getProof claims balance + 1; the proof is untouched",
    "forged_balance": "an existing account's proof leaf says balance + 1, every node above rehashed (a new root)",
    "drop_node": "eth_getProof's account proof loses its last node",
    "alter_node": "eth_getProof's account proof has one byte of its root node changed",
    "storage_value": "eth_getProof claims storage value + 1",
    "forged_storage": "eth_getProof's storage leaf says value + 1, every node above rehashed to match",
    "code": "eth_getCode returns different code",
    "timestamp": "eth_getBlockByNumber's timestamp + 1",
    "state_root": "eth_getBlockByNumber's stateRoot replaced",
    "other_block": "eth_getBlockByNumber returns the previous block for any block > 0",
    "block_hash": "eth_getBlockByNumber's hash replaced (a block no other RPC names)",
}


def json_rpc(url: str, timeout: float = 10.0) -> Callable[[str, list[Any]], Any]:
    """An RpcFn over HTTP with keep-alive; a JSON-RPC error raises RuntimeError."""
    client = httpx.Client(timeout=timeout)

    def call(method: str, params: list[Any]) -> Any:
        reply = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    return call


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _forge(proof: list[str], change: Callable[[bytes], bytes]) -> list[str]:
    """`proof` with its leaf's value changed, and every node above rehashed so the path stays consistent."""
    encoded = [bytes.fromhex(node[2:]) for node in proof]
    nodes = [rlp.decode(node) for node in encoded]
    nodes[-1][1] = change(nodes[-1][1])
    for i in range(len(nodes) - 2, -1, -1):
        child = nodes[i].index(keccak(encoded[i + 1]))
        nodes[i][child] = keccak(rlp.encode(nodes[i + 1]))
    return [_hex(rlp.encode(node)) for node in nodes]


def _plus_one_balance(account_rlp: bytes) -> bytes:
    nonce, balance, storage_root, code_hash = rlp.decode(account_rlp)
    return rlp.encode([nonce, int.from_bytes(balance, "big") + 1, storage_root, code_hash])


def _exists(proof: dict[str, Any]) -> bool:
    return int(proof["nonce"], 16) > 0 or int(proof["balance"], 16) > 0 or proof["codeHash"] != _hex(keccak(b""))


class LyingRpc:
    """A JSON-RPC proxy on 127.0.0.1 forwarding to `upstream`; `lie` (one of LIES, or None) picks the tampering."""

    def __init__(self, upstream: str, lie: str | None = None) -> None:
        self.upstream = upstream
        self.lie = lie
        self.stall_seconds = 0.0  # > 0: every answer waits this long first (a host that stalls)
        self.answers_delayed = 0
        self.lies_told = 0
        self._count_lock = threading.Lock()
        self._client = httpx.Client(timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LyingRpc:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = json.dumps(proxy._answer(json.loads(body))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def _answer(self, request: Any) -> Any:
        if isinstance(request, list):
            return [self._answer(item) for item in request]
        if self.stall_seconds:
            with self._count_lock:
                self.answers_delayed += 1
            time.sleep(self.stall_seconds)
        reply = self._client.post(self.upstream, json=request).json()
        if self.lie is not None and reply.get("result") is not None:
            told = self._tamper(request["method"], request.get("params", []), reply["result"])
            if told is not None:
                reply["result"] = told
                with self._count_lock:
                    self.lies_told += 1
        return reply

    def _tamper(self, method: str, params: list[Any], result: Any) -> Any:
        """The lied-about result, or None when this answer is not one the current lie touches."""
        lie = self.lie
        if method == "eth_getProof":
            balance = int(result["balance"], 16)
            if lie == "balance":
                return {**result, "balance": hex(balance + 1)}
            if lie == "forged_balance" and _exists(result):
                return {**result, "balance": hex(balance + 1), "accountProof": _forge(result["accountProof"], _plus_one_balance)}
            if lie == "drop_node" and result["accountProof"]:
                return {**result, "accountProof": result["accountProof"][:-1]}
            if lie == "alter_node":
                root = bytearray.fromhex(result["accountProof"][0][2:])
                root[-5] ^= 1
                return {**result, "accountProof": [_hex(bytes(root)), *result["accountProof"][1:]]}
            if lie in ("storage_value", "forged_storage") and result["storageProof"]:
                entry = result["storageProof"][0]
                value = int(entry["value"], 16)
                forged = {**entry, "value": hex(value + 1)}
                if lie == "forged_storage":
                    if not entry["proof"] or value == 0:
                        return None
                    forged["proof"] = _forge(entry["proof"], lambda _: rlp.encode(value + 1))
                return {**result, "storageProof": [forged, *result["storageProof"][1:]]}
        if method == "eth_getCode" and lie == "code" and result != "0x":
            return result + "00"
        if method == "eth_getBlockByNumber":
            if lie == "timestamp":
                return {**result, "timestamp": hex(int(result["timestamp"], 16) + 1)}
            if lie == "block_hash":
                return {**result, "hash": _hex(keccak(result["hash"].encode()))}
            if lie == "state_root":
                return {**result, "stateRoot": _hex(keccak(result["stateRoot"].encode()))}
            if lie == "other_block" and int(result["number"], 16) > 0:
                previous = hex(int(result["number"], 16) - 1)
                return self._client.post(
                    self.upstream, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": [previous, *params[1:]]}
                ).json()["result"]
        return None
