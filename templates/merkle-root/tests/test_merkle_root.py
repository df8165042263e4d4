"""merkle-root through the real enclave and workers; proofs checked the way OpenZeppelin's MerkleProof checks them."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak

from coprocessor.protocol import Status
from coprocessor.testing import TemplateRunner
from coprocessor.toolchain import NODE_MODULES

TEMPLATE = Path(__file__).resolve().parents[1]


def commutative_keccak256(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin Hashes.commutativeKeccak256: `a < b ? keccak256(a, b) : keccak256(b, a)` on bytes32."""
    return keccak(a + b) if int.from_bytes(a, "big") < int.from_bytes(b, "big") else keccak(b + a)


def process_proof(proof: list[bytes], leaf: bytes) -> bytes:
    """OpenZeppelin MerkleProof.processProof: fold the proof into the leaf."""
    computed = leaf
    for node in proof:
        computed = commutative_keccak256(computed, node)
    return computed


def leaves(count: int, seed: int = 1) -> list[bytes]:
    """`count` leaves as OpenZeppelin recommends them: double-hashed data."""
    return [keccak(keccak(encode(["uint256", "uint256"], [seed, i]))) for i in range(count)]


@pytest.fixture(scope="module")
def runner() -> Iterator[TemplateRunner]:
    with TemplateRunner(TEMPLATE) as runner:
        yield runner


def root_and_proof(runner: TemplateRunner, items: list[bytes], index: int) -> tuple[bytes, list[bytes]]:
    root, proof = runner.run("merkle-root", [items, index]).values
    return root, list(proof)


def test_oneLeaf_isTheRoot(runner: TemplateRunner) -> None:
    [leaf] = leaves(1)
    assert root_and_proof(runner, [leaf], 0) == (leaf, [])


def test_smallTrees_byHand(runner: TemplateRunner) -> None:
    a, b, c = leaves(3)
    assert root_and_proof(runner, [a, b], 1) == (commutative_keccak256(a, b), [a])
    ab = commutative_keccak256(a, b)
    assert root_and_proof(runner, [a, b, c], 2) == (commutative_keccak256(ab, c), [ab])  # c carried up
    assert root_and_proof(runner, [a, b, c], 0) == (commutative_keccak256(ab, c), [b, c])


@pytest.mark.parametrize("count", [5, 7, 13])
def test_oddCounts_everyProofVerifies(runner: TemplateRunner, count: int) -> None:
    items = leaves(count, seed=count)
    roots = set()
    for index, leaf in enumerate(items):
        root, proof = root_and_proof(runner, items, index)
        assert process_proof(proof, leaf) == root
        assert process_proof(proof, keccak(leaf)) != root  # another leaf does not
        roots.add(root)
    assert len(roots) == 1


def test_4096Leaves_proofsOf12Verify(runner: TemplateRunner) -> None:
    items = leaves(4096)
    for index in (0, 1, 2047, 2048, 4095, random.Random(7).randrange(4096)):
        result = runner.run("merkle-root", [items, index])
        root, proof = result.values
        assert len(proof) == 12
        assert process_proof(list(proof), items[index]) == root
        assert result.seconds < 2
    other = list(items)
    other[100] = keccak(b"changed")
    assert root_and_proof(runner, other, 0)[0] != root


def test_maxLeaves_fitLimits_oneMoreRefused(runner: TemplateRunner) -> None:
    items = [i.to_bytes(32, "big") for i in range(1, 65537)]  # cheap to make; the tree does not care
    root, proof = root_and_proof(runner, items, 65535)
    assert len(proof) == 16 and process_proof(proof, items[65535]) == root
    result = runner.run("merkle-root", [[*items, items[0]], 0])
    assert result.status == Status.INVALID_INPUT and "at most 65536 leaves" in result.reason


def test_noLeaves_invalidInput(runner: TemplateRunner) -> None:
    result = runner.run("merkle-root", [[], 0])
    assert result.status == Status.INVALID_INPUT and result.reason == "no leaves"


@pytest.mark.parametrize("index", [3, 2**256 - 1])
def test_indexOutOfRange_invalidInput(runner: TemplateRunner, index: int) -> None:
    result = runner.run("merkle-root", [leaves(3), index])
    assert result.status == Status.INVALID_INPUT and "out of range for 3 leaves" in result.reason


def test_onChainInputLimit_509Leaves() -> None:
    # Coprocessor.maxInputBytes defaults to 16 KiB: offset, index and length words plus 32 bytes a leaf.
    assert len(encode(["bytes32[]", "uint256"], [leaves(509), 0])) == 16 * 1024
    assert len(encode(["bytes32[]", "uint256"], [leaves(510), 0])) > 16 * 1024


# OpenZeppelin's JavaScript library, run by Node.js from the project's npm packages: the tool airdrop
# and allowlist authors build roots with. `SimpleMerkleTree.of(leaves, {sortLeaves: false})` keeps the
# leaves in their order, as this template does.
_OZ_SCRIPT = """
const {SimpleMerkleTree} = require(process.argv[1]);
const [leaves, indexes] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const tree = SimpleMerkleTree.of(leaves, {sortLeaves: false});
console.log(JSON.stringify({root: tree.root, proofs: indexes.map(i => tree.getProof(i))}));
"""


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 256, 509, 1000, 1024])
def test_rootAndProofs_matchOpenZeppelinsMerkleTree(runner: TemplateRunner, count: int) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed (the project's toolchain uses it): install it"
    items = leaves(count, seed=count)
    indexes = sorted({0, count // 3, count - 1})
    answer = subprocess.run(
        [node, "-e", _OZ_SCRIPT, str(NODE_MODULES / "@openzeppelin" / "merkle-tree")],
        input=json.dumps([["0x" + leaf.hex() for leaf in items], indexes]), capture_output=True, text=True, check=True,
    )
    theirs = json.loads(answer.stdout)
    for index, proof in zip(indexes, theirs["proofs"]):
        root, ours = root_and_proof(runner, items, index)
        assert "0x" + root.hex() == theirs["root"]
        assert ["0x" + p.hex() for p in ours] == proof
