"""Merkle root and inclusion proof over many leaves: computation that is cheap off-chain, costly on-chain.

Building a tree over thousands of leaves costs a keccak256 per node, thousands of hashes, and
the leaves themselves as calldata or storage. A contract that has a list (allowlist, airdrop,
snapshot of balances) can ask for its root once, store 32 bytes, and verify claims later
with OpenZeppelin's `MerkleProof.verify(proof, root, leaf)`.

Tree: OpenZeppelin's, as its JavaScript library builds it (`SimpleMerkleTree.of(leaves, {sortLeaves:
false})` in @openzeppelin/merkle-tree), so a root built there and one built here agree: a complete
binary tree in an array of 2n-1 nodes, the leaves at its end in reverse order, node i the hash of
nodes 2i+1 and 2i+2 as `Hashes.commutativeKeccak256` hashes a pair (the smaller word first).
Leaves should themselves be hashes, e.g. `keccak256(bytes.concat(keccak256(abi.encode(account,
amount))))`, never 64-byte preimages.
"""

from __future__ import annotations

from eth_utils import keccak

from coprocessor.sdk import Context, InvalidInput

MAX_LEAVES = 65536


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of the two words, smaller first (OpenZeppelin `Hashes.commutativeKeccak256`)."""
    return keccak(a + b) if a < b else keccak(b + a)


def tree_of(leaves: list[bytes]) -> list[bytes]:
    """The whole tree as OpenZeppelin lays it out: 2n-1 nodes, leaf i at position 2n-2-i, node i over nodes 2i+1 and 2i+2."""
    tree = [b""] * (2 * len(leaves) - 1)
    for i, leaf in enumerate(leaves):
        tree[-1 - i] = leaf
    for i in range(len(tree) - 1 - len(leaves), -1, -1):
        tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def root_and_proof(leaves: list[bytes], index: int) -> tuple[bytes, list[bytes]]:
    """The root over `leaves` and the siblings on the path from `leaves[index]` up to it."""
    tree = tree_of(leaves)
    position, proof = len(tree) - 1 - index, []
    while position > 0:
        proof.append(tree[position + 1 if position % 2 else position - 1])
        position = (position - 1) // 2
    return tree[0], proof


def run(ctx: Context, leaves: tuple[bytes, ...], index: int) -> tuple[bytes, list[bytes]]:
    """(root, proof of `leaves[index]`)."""
    if not leaves:
        raise InvalidInput("no leaves")
    if len(leaves) > MAX_LEAVES:
        raise InvalidInput(f"at most {MAX_LEAVES} leaves, got {len(leaves)}")
    if index >= len(leaves):
        raise InvalidInput(f"index {index} is out of range for {len(leaves)} leaves")
    root, proof = root_and_proof(list(leaves), index)
    ctx.log(f"merkle-root: {len(leaves)} leaves, root 0x{root.hex()}, proof of {index}: {len(proof)} nodes")
    return root, proof
