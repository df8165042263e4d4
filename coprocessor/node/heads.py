"""New chain heads as the chain makes them: a websocket `newHeads` subscription, polling as the fallback."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from websockets.sync.client import connect as ws_connect

from ..chain import rpc

log = logging.getLogger(__name__)

# With a live subscription, a slow poll still runs, in case a notification is lost.
_SAFETY_POLL_SECONDS = 1.0
_WS_RETRY_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Head:
    """One block header: what the node needs to follow the chain."""

    number: int
    hash: str  # hex, no 0x
    parent_hash: str
    timestamp: int
    base_fee: int

    @classmethod
    def from_rpc(cls, block: Any) -> Head:
        """From a web3 block or a raw JSON-RPC header (hex strings)."""

        def number(key: str) -> int:
            value = block.get(key) or 0
            return int(value, 16) if isinstance(value, str) else int(value)

        def hash_(key: str) -> str:
            value = block[key]
            return value.removeprefix("0x") if isinstance(value, str) else bytes(value).hex()

        return cls(number("number"), hash_("hash"), hash_("parentHash"), number("timestamp"), number("baseFeePerGas"))


def ws_url_for(rpc_url: str) -> str:
    """The websocket URL an HTTP JSON-RPC URL usually also serves (Anvil, geth and reth serve both on one port)."""
    if rpc_url.startswith("https://"):
        return "wss://" + rpc_url.removeprefix("https://")
    return "ws://" + rpc_url.removeprefix("http://")


class HeadSource:
    """Tracks the latest head and wakes whoever waits for a new one."""

    def __init__(self, w3: Web3, ws_url: str | None, poll_interval: float = 0.05) -> None:
        self.w3 = w3
        self.ws_url = ws_url
        self.poll_interval = poll_interval
        self.latest: Head | None = None
        self.version = 0
        self.subscribed = False
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Reads the current head, then follows the chain in background threads."""
        self.poll_once()
        self._threads = [threading.Thread(target=self._poll_loop, name="heads-poll", daemon=True)]
        if self.ws_url:
            self._threads.append(threading.Thread(target=self._ws_loop, name="heads-ws", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stops following; waiters wake up."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def wait(self, seen_version: int, timeout: float) -> int:
        """Blocks until a head newer than `seen_version` arrives (or `timeout`); returns the current version."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen_version or self._stop.is_set(), timeout)
            return self.version

    def poke(self) -> None:
        """Wakes the waiters without a new head (another stage has work for them)."""
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def poll_once(self) -> Head:
        """Asks the RPC for the latest block."""
        head = Head.from_rpc(rpc(self.w3, "eth_getBlockByNumber", ["latest", False]))  # raw: web3's formatters cost ms
        self._offer(head)
        return head

    def _offer(self, head: Head) -> None:
        with self._changed:
            if self.latest is not None and self.latest.hash == head.hash:
                return
            self.latest = head
            self.version += 1
            self._changed.notify_all()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(_SAFETY_POLL_SECONDS if self.subscribed else self.poll_interval)
            if self._stop.is_set():
                return
            try:
                self.poll_once()
            except Exception as exc:  # an RPC outage: keep trying at the same pace
                log.debug("head poll failed: %s", exc)

    def _ws_loop(self) -> None:
        assert self.ws_url is not None
        delay = 0.5
        while not self._stop.is_set():
            try:
                with ws_connect(self.ws_url, open_timeout=5, max_size=2**20) as ws:
                    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
                    reply = json.loads(ws.recv(timeout=5))
                    if "error" in reply:
                        log.info("no newHeads subscription at %s (%s): polling", self.ws_url, reply["error"])
                        return
                    self.subscribed = True
                    log.info("following new heads over %s", self.ws_url)
                    delay = 0.5
                    while not self._stop.is_set():
                        try:
                            message = ws.recv(timeout=_SAFETY_POLL_SECONDS)
                        except TimeoutError:
                            continue
                        header = json.loads(message).get("params", {}).get("result")
                        if isinstance(header, dict):
                            self._offer(Head.from_rpc(header))
            except Exception as exc:  # the socket dropped or never opened: poll meanwhile, retry with backoff
                if self.subscribed:
                    log.warning("head subscription lost (%s): polling until it is back", exc)
                else:
                    log.debug("no websocket at %s: %s", self.ws_url, exc)
            self.subscribed = False
            self._stop.wait(delay)
            delay = min(delay * 2, _WS_RETRY_MAX_SECONDS)

    def wait_started(self, timeout: float = 2.0) -> bool:
        """Waits until the subscription is live (tests and benchmarks); False if it is not."""
        deadline = time.monotonic() + timeout
        while not self.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.subscribed
