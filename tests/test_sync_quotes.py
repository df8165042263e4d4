"""Sync mode on a real Anvil: quotes from the node's endpoint, verified inline by SignedQuoteConsumer."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from coprocessor.chain import ANVIL_KEYS, ChainError, TxSender, contract, decode_revert
from coprocessor.dev import devnet
from coprocessor.node.quotes import QuoteService, RateLimiter, fetch_quote, make_quote_server, web3_anchor
from coprocessor_enclave.protocol import SignedQuote, coprocessor_domain, quote_digest, recover_signer
from coprocessor_enclave.template import encode_args

from .conftest import Devnet

E8 = 10**8


@dataclass
class QuoteStack:
    """The stack plus a running quote endpoint and a deployed SignedQuoteConsumer for median-price."""

    devnet: Devnet
    url: str
    consumer: str
    user: TxSender

    def body(self, args: list[Any], **overrides: Any) -> dict[str, Any]:
        """A quote request for median-price on `args`, for the consumer."""
        data = encode_args(self.devnet.template("median-price"), args)
        return {"templateId": "median-price", "input": "0x" + data.hex(), "consumer": self.consumer, **overrides}

    def submit(self, args: list[Any], signed: SignedQuote) -> Any:
        """Sends `SignedQuoteConsumer.submit(input, quoteData)` as the user."""
        data = encode_args(self.devnet.template("median-price"), args)
        handle = contract(self.devnet.w3, "SignedQuoteConsumer", self.consumer)
        calldata = bytes.fromhex(handle.encode_abi("submit", args=[data, signed.encode()]).removeprefix("0x"))
        return self.user.transact(self.consumer, calldata)

    def revert_of(self, args: list[Any], signed: SignedQuote) -> str:
        """The decoded custom error `submit` reverts with (from an eth_call)."""
        data = encode_args(self.devnet.template("median-price"), args)
        handle = contract(self.devnet.w3, "SignedQuoteConsumer", self.consumer)
        calldata = handle.encode_abi("submit", args=[data, signed.encode()])
        try:
            self.devnet.w3.eth.call({"from": self.user.address, "to": self.consumer, "data": calldata})
        except Exception as exc:
            return decode_revert(getattr(exc, "data", None))
        raise AssertionError("submit did not revert")


@pytest.fixture(scope="module")
def quotes(stack: Devnet) -> Iterator[QuoteStack]:
    user = TxSender(stack.w3, ANVIL_KEYS[devnet.USER])
    median = stack.template("median-price")
    consumer = user.deploy("SignedQuoteConsumer", stack.deployment.registry, stack.deployment.coprocessor, median.template_id)
    service = QuoteService(stack.enclave(), web3_anchor(stack.w3))
    server = make_quote_server(service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield QuoteStack(stack, f"http://127.0.0.1:{server.server_address[1]}", consumer, user)
    server.shutdown()


def _post(url: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + "/quote", data=raw, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


PRICES = [[3012 * E8, 3015 * E8, 3009 * E8, 9999 * E8], 200]


def test_quote_fromNodeEndpoint_isVerifiedAndStoredOnChain(quotes: QuoteStack) -> None:
    signed = fetch_quote(quotes.url, quotes.body(PRICES))
    d = quotes.devnet
    assert decode(["uint256", "uint16"], signed.output) == (3012 * E8, 3)
    assert signed.quote.consumer == quotes.consumer and signed.quote.chain_id == d.deployment.chain_id
    assert signed.quote.anchor_block > 0  # anchored to the parent of the node's latest block
    digest = quote_digest(coprocessor_domain(d.deployment.chain_id, d.deployment.coprocessor), signed.quote)
    assert recover_signer(digest, signed.signature) == signed.signer == d.enclave().info()["address"]

    receipt = quotes.submit(PRICES, signed)
    handle = contract(d.w3, "SignedQuoteConsumer", quotes.consumer)
    assert handle.functions.price().call() == 3012 * E8
    assert handle.functions.sources().call() == 3
    assert handle.functions.quoteUsed(signed.quote.nonce).call()
    assert receipt["gasUsed"] < 200_000


def test_quote_tampered_reverts(quotes: QuoteStack) -> None:
    signed = fetch_quote(quotes.url, quotes.body(PRICES))
    cheaper = replace(signed, output=encode(["uint256", "uint16"], [1, 3]))
    assert quotes.revert_of(PRICES, cheaper) == "OutputMismatch()"
    rehashed = replace(cheaper, quote=replace(signed.quote, output_hash=keccak(cheaper.output)))
    assert quotes.revert_of(PRICES, rehashed) == "InvalidQuoteSignature()"
    longer = replace(signed, quote=replace(signed.quote, deadline=signed.quote.deadline + 3600))
    assert quotes.revert_of(PRICES, longer) == "InvalidQuoteSignature()"
    with pytest.raises(ChainError, match=r"OutputMismatch\(\)"):
        quotes.submit(PRICES, cheaper)  # the node's own transaction path reports the same error


def test_quote_replayed_reverts(quotes: QuoteStack) -> None:
    signed = fetch_quote(quotes.url, quotes.body(PRICES))
    quotes.submit(PRICES, signed)
    assert quotes.revert_of(PRICES, signed) == f"QuoteReplayed(0x{signed.quote.nonce.hex()})"


def test_quote_forOtherConsumerOrExpired_reverts(quotes: QuoteStack) -> None:
    other = fetch_quote(quotes.url, quotes.body(PRICES, consumer=quotes.user.address))
    assert quotes.revert_of(PRICES, other) == f"WrongConsumer({quotes.user.address.lower()})"
    short = fetch_quote(quotes.url, quotes.body(PRICES, deadline=int(time.time()) + 2))
    quotes.devnet.w3.provider.make_request("evm_increaseTime", [60])  # type: ignore[arg-type]
    quotes.devnet.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert quotes.revert_of(PRICES, short) == f"QuoteExpired({short.quote.deadline})"


def test_quote_errorStatus_isNotSigned(quotes: QuoteStack) -> None:
    code, body = _post(quotes.url, json.dumps(quotes.body([[], 100])).encode())
    assert code == 422
    assert body["statusName"] == "INVALID_INPUT" and "signature" not in body
    assert body["reason"] == "no prices given"


def test_quote_badRequests_getJsonErrors(quotes: QuoteStack) -> None:
    cases = [
        (b"not json", 400, "not JSON"),
        (json.dumps([1]).encode(), 400, "JSON object"),
        (json.dumps(quotes.body(PRICES, consumer="0x1234")).encode(), 400, "consumer"),
        (json.dumps(quotes.body(PRICES, templateId="no-such-template")).encode(), 404, "no template named"),
        (json.dumps(quotes.body(PRICES, templateId="0x" + "11" * 32)).encode(), 400, "unknown template"),
        (json.dumps(quotes.body(PRICES, deadline=int(time.time()) + 10 * 24 * 3600)).encode(), 400, "deadline"),
        (json.dumps(quotes.body(PRICES, deadline=1)).encode(), 400, "deadline"),
        (json.dumps(quotes.body(PRICES, input="0x" + "00" * 20_000)).encode(), 413, "input"),
        (b"{" + b" " * 70_000 + b"}", 413, "body"),
    ]
    for raw, code, fragment in cases:
        got, body = _post(quotes.url, raw)
        assert (got, fragment in body["error"]) == (code, True), (raw[:80], got, body)


def test_quote_chainRead_anchoredToTheNodesLatestBlock(quotes: QuoteStack) -> None:
    holder = quotes.devnet.template("token-holder")
    user = quotes.user.address
    data = encode_args(holder, ["0x" + "00" * 20, user, 10**18])
    body = {"templateId": holder.id_hex, "input": "0x" + data.hex(), "consumer": quotes.consumer}
    signed = fetch_quote(quotes.url, body)
    block = quotes.devnet.w3.eth.get_block(signed.quote.anchor_block)
    assert bytes(block["hash"]) == signed.quote.anchor_hash
    held, balance = decode(["bool", "uint256"], signed.output)
    assert held and balance == quotes.devnet.w3.eth.get_balance(user, signed.quote.anchor_block)

    # Without an anchor nothing can be verified, so the template may not read the chain at all.
    unanchored = QuoteService(quotes.devnet.enclave())
    with pytest.raises(Exception, match="no anchor block"):
        unanchored.quote(body)


def test_quote_rateLimit_andBusy(quotes: QuoteStack) -> None:
    clock = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: clock[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")
    clock[0] = 1.0
    assert limiter.allow("a") and not limiter.allow("a")

    service = QuoteService(quotes.devnet.enclave(), rate=RateLimiter(rate=0.001, burst=1))
    service.quote(quotes.body(PRICES), client="c")
    with pytest.raises(Exception, match="too many"):
        service.quote(quotes.body(PRICES), client="c")


def test_quoteEndpoint_deeplyNestedBody_isAJsonErrorNotACrash(quotes: QuoteStack) -> None:
    status, reply = _post(quotes.url, b'{"templateId":' + b"[" * 30_000 + b"]" * 30_000 + b"}")
    assert status == 400 and "arrays and objects" in reply["error"]
    assert _post(quotes.url, json.dumps(quotes.body(PRICES)).encode())[0] == 200  # and it still serves
