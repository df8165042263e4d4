"""What Python writes by hand about the contracts is checked against the contracts themselves: enum
values against their Solidity declarations, event topics and call selectors against the forge ABIs,
so a change on one side that the other misses fails here. (EIP-712 type hashes, commitments and
signatures are pinned by the golden vectors both forge and pytest check: `tests/golden.py`.)"""

from __future__ import annotations

import enum
import json
import re

import pytest
from eth_utils import keccak

from coprocessor.dev.toolchain import FOUNDRY_VERSION, PROJECT_ROOT, SOLIDITY_DIR, artifact
from coprocessor.node import catalog
from coprocessor_enclave import protocol
from coprocessor_enclave.status import Status


def _solidity_enum(name: str) -> list[str]:
    """The members of `enum name { ... }`, in order, from solidity/src."""
    for path in sorted((SOLIDITY_DIR / "src").rglob("*.sol")):
        found = re.search(rf"\benum\s+{name}\s*\{{([^}}]*)\}}", path.read_text())
        if found:
            body = re.sub(r"//[^\n]*", "", found.group(1))
            return [member.strip() for member in body.split(",") if member.strip()]
    raise AssertionError(f"no enum {name} in solidity/src")


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


@pytest.mark.parametrize(
    ("python", "solidity"),
    [
        (Status, "Status"),
        (protocol.RequestState, "RequestState"),
        (protocol.TeeType, "TeeType"),
        (protocol.SkipReason, "SkipReason"),
    ],
)
def test_enum_matchesItsSolidityDeclaration(python: type[enum.IntEnum], solidity: str) -> None:
    members = _solidity_enum(solidity)
    assert [(m.name, m.value) for m in python] == [(_upper_snake(name), i) for i, name in enumerate(members)]


def _signature(item: dict) -> str:
    def kind(arg: dict) -> str:
        if arg["type"].startswith("tuple"):
            return "(" + ",".join(kind(c) for c in arg["components"]) + ")" + arg["type"][len("tuple") :]
        return arg["type"]

    return f"{item['name']}({','.join(kind(a) for a in item['inputs'])})"


def _abi_item(contract: str, kind: str, name: str) -> dict:
    (item,) = [i for i in artifact(contract)["abi"] if i["type"] == kind and i.get("name") == name]
    return item


@pytest.mark.parametrize(
    ("constant", "contract", "event"),
    [
        (protocol.REQUEST_SUBMITTED_TOPIC, "Coprocessor", "RequestSubmitted"),
        (protocol.REQUEST_FULFILLED_TOPIC, "Coprocessor", "RequestFulfilled"),
        (protocol.FULFILLMENT_SKIPPED_TOPIC, "Coprocessor", "FulfillmentSkipped"),
        (protocol.REQUEST_CANCELLED_TOPIC, "Coprocessor", "RequestCancelled"),
        (protocol.KEYS_PUBLISHED_TOPIC, "KeyRegistry", "KeysPublished"),
        (catalog.TEMPLATE_PUBLISHED_TOPIC, "TemplateRegistry", "TemplatePublished"),
        (catalog.TEMPLATE_DEPRECATED_TOPIC, "TemplateRegistry", "TemplateDeprecated"),
    ],
)
def test_eventTopic_matchesTheAbi(constant: bytes, contract: str, event: str) -> None:
    assert constant == keccak(_signature(_abi_item(contract, "event", event)).encode())


@pytest.mark.parametrize(("constant", "function"), [(protocol.FULFILL_SELECTOR, "fulfill"), (protocol.CANCEL_SELECTOR, "cancel")])
def test_callSelector_matchesTheAbi(constant: bytes, function: str) -> None:
    item = _abi_item("Coprocessor", "function", function)
    assert constant == keccak(_signature(item).encode())[:4]
    assert constant.hex() == artifact("Coprocessor")["methodIdentifiers"][_signature(item)]


def test_foundryVersion_isThePinnedNpmPackage() -> None:
    pins = json.loads((PROJECT_ROOT / "package.json").read_text())["dependencies"]
    assert {pins[f"@foundry-rs/{tool}-linux-amd64"] for tool in ("anvil", "forge", "cast")} == {FOUNDRY_VERSION}
