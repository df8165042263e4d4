"""The TemplateRegistry on a real Anvil: the catalogue, refusals, and author fees paid by real fulfilments.

`fee-echo` (tests/templates) is served by the stack's enclave but left unpublished by the stack, so
this module publishes it with a non-zero author fee. Tests share one module stack and run in file
order: the last one deprecates `fee-echo`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from web3.contract import Contract

from coprocessor.chain import ANVIL_KEYS, TxSender, contract
from coprocessor.dev import devnet
from coprocessor.errors import ChainError
from coprocessor.node import catalog
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import Template, encode_args

from .conftest import Devnet

AUTHOR_FEE = 3 * 10**15
EXTRA = 10**15  # what the payee keeps, on top of the author fee


@pytest.fixture(scope="module")
def fee_echo(stack: Devnet) -> Template:
    """`fee-echo`, published by the AUTHOR account with `AUTHOR_FEE`."""
    template = stack.template("fee-echo")
    author = TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR])
    catalog.publish(
        author, stack.deployment.template_registry, template.template_id, template.name, template.version, "ipfs://fee-echo", AUTHOR_FEE
    )
    return template


def _coprocessor(stack: Devnet) -> Contract:
    return contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)


def _balances(stack: Devnet) -> tuple[int, int, int]:
    """Credited (author, payee, consumer) balances in the Coprocessor."""
    coprocessor = _coprocessor(stack)
    author = TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR]).address
    return tuple(  # type: ignore[return-value]
        coprocessor.functions.balanceOf(account).call() for account in (author, stack.payee, stack.deployment.consumer)
    )


# ---------------------------------------------------------------------------- catalogue


def test_deploy_publishesStackTemplatesWithoutFee(stack: Devnet) -> None:
    listed = {entry.template_id: entry for entry in catalog.listings(stack.w3, stack.deployment.template_registry)}
    author = TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR]).address
    expected = {t.template_id for t in stack.templates.values() if t.name != "fee-echo"}
    assert expected <= set(listed)
    for template_id in expected:
        entry = listed[template_id]
        template = stack.templates[template_id]
        assert (entry.name, entry.version, entry.uri) == (template.name, template.version, "")
        assert (entry.author, entry.author_fee, entry.deprecated) == (author, 0, False)
        assert catalog.lookup(stack.w3, stack.deployment.template_registry, template_id) == entry


def test_publish_listsAndLooksUpTheAuthorFee(stack: Devnet, fee_echo: Template) -> None:
    registry = stack.deployment.template_registry
    entry = catalog.lookup(stack.w3, registry, fee_echo.template_id)
    assert entry is not None
    assert (entry.name, entry.uri, entry.author_fee, entry.deprecated) == ("fee-echo", "ipfs://fee-echo", AUTHOR_FEE, False)
    assert entry.author == TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR]).address
    assert catalog.listings(stack.w3, registry)[-1] == entry
    assert _coprocessor(stack).functions.requestFee(fee_echo.template_id).call() == AUTHOR_FEE
    assert catalog.lookup(stack.w3, registry, b"\x42" * 32) is None


def test_publish_refusalsCarryTheDecodedError(stack: Devnet, fee_echo: Template) -> None:
    registry = stack.deployment.template_registry
    author = TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR])
    stranger = TxSender(stack.w3, ANVIL_KEYS[devnet.USER])
    with pytest.raises(catalog.CatalogError, match=r"TemplateAlreadyPublished\(0x" + fee_echo.template_id.hex()):
        catalog.publish(author, registry, fee_echo.template_id, "fee-echo", "0.0.2", "", 0)
    with pytest.raises(catalog.CatalogError) as refused:
        catalog.publish(stranger, registry, b"\x07" * 32, "fee-echo", "6.6.6", "", 0)
    assert refused.value.reason == f"NotNameOwner(fee-echo, {author.address.lower()})"
    with pytest.raises(catalog.CatalogError, match="EmptyName"):
        catalog.publish(stranger, registry, b"\x07" * 32, "", "1", "", 0)
    with pytest.raises(catalog.CatalogError, match="NotAuthor"):
        catalog.deprecate(stranger, registry, fee_echo.template_id)
    with pytest.raises(catalog.CatalogError, match="does not fit in a uint96"):
        catalog.publish(stranger, registry, b"\x07" * 32, "x", "1", "", 2**96)


# ---------------------------------------------------------------------------- requests


def test_request_unknownTemplate_revertsWithUnknownTemplate(stack: Devnet) -> None:
    unknown = b"\x42" * 32
    with pytest.raises(ChainError, match=r"UnknownTemplate\(0x" + unknown.hex() + r"\)"):
        stack.user().ask(unknown, b"")


def test_request_belowAuthorFee_revertsWithFeeTooLow(stack: Devnet, fee_echo: Template) -> None:
    with pytest.raises(ChainError, match=rf"FeeTooLow\({AUTHOR_FEE - 1}, {AUTHOR_FEE}\)"):
        stack.user().ask(fee_echo.template_id, encode_args(fee_echo, [7]), fee=AUTHOR_FEE - 1)


def test_fulfil_ok_creditsAuthorFeeToAuthorAndRestToPayee(stack: Devnet, fee_echo: Template, node: Node) -> None:
    before = _balances(stack)
    client = stack.user()
    request_id, sent_at = client.ask(fee_echo.template_id, encode_args(fee_echo, [7]), fee=AUTHOR_FEE + EXTRA)
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.OK and answer.describe(fee_echo) == "7"
    after = _balances(stack)
    assert [a - b for a, b in zip(after, before, strict=True)] == [AUTHOR_FEE, EXTRA, 0]


def test_fulfil_error_refundsAuthorFeeToConsumer(stack: Devnet, fee_echo: Template, node: Node) -> None:
    before = _balances(stack)
    client = stack.user()
    request_id, sent_at = client.ask(fee_echo.template_id, encode_args(fee_echo, [0]), fee=AUTHOR_FEE + EXTRA)
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.INVALID_INPUT and answer.output == b"zero is not echoed"
    after = _balances(stack)
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, EXTRA, AUTHOR_FEE]


def test_deprecate_refusesNewRequests_pendingOneStillPaysAuthor(stack: Devnet, fee_echo: Template, tmp_path: Path) -> None:
    registry = stack.deployment.template_registry
    client = stack.user()
    start_block = stack.w3.eth.block_number + 1
    pending, sent_at = client.ask(fee_echo.template_id, encode_args(fee_echo, [9]), fee=AUTHOR_FEE + EXTRA)

    catalog.deprecate(TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR]), registry, fee_echo.template_id)
    entry = catalog.lookup(stack.w3, registry, fee_echo.template_id)
    assert entry is not None and entry.deprecated and entry.author_fee == AUTHOR_FEE
    assert [e for e in catalog.listings(stack.w3, registry) if e.deprecated] == [entry]
    with pytest.raises(ChainError, match=r"TemplateIsDeprecated\(0x" + fee_echo.template_id.hex()):
        client.ask(fee_echo.template_id, encode_args(fee_echo, [9]), fee=AUTHOR_FEE + EXTRA)

    # A node that starts only now picks up the request made before the deprecation and is paid as usual.
    before = _balances(stack)
    node, thread = stack.start_node(tmp_path / "journal.sqlite", start_block)
    try:
        answer = client.wait(pending, sent_at)
    finally:
        node.stop()
        thread.join(10)
    assert answer.status == Status.OK
    after = _balances(stack)
    assert [a - b for a, b in zip(after, before, strict=True)] == [AUTHOR_FEE, EXTRA, 0]
