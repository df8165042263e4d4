"""Merkle root and inclusion proof over many leaves: computation that is cheap off-chain, costly on-chain.

Building a tree over thousands of leaves costs a keccak256 per node, thousands of hashes, and
the leaves themselves as calldata or storage. A contract that has a list (allowlist, airdrop,
snapshot of balances) can ask for its root once, store 32 bytes, and verify claims later
with OpenZeppelin's `MerkleProof.verify(proof, root, leaf)`.

Tree: leaves in the order given; each level pairs nodes (0,1), (2,3), ... and hashes each pair
as OpenZeppelin's `Hashes.commutativeKeccak256` does (the smaller word first); an unpaired last
node moves up a level unchanged. Leaves should themselves be hashes, e.g.
`keccak256(bytes.concat(keccak256(abi.encode(account, amount))))`, never 64-byte preimages.
"""

from __future__ import annotations

from eth_utils import keccak

from coprocessor.sdk import Context, InvalidInput

MAX_LEAVES = 65536


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of the two words, smaller first (OpenZeppelin `Hashes.commutativeKeccak256`)."""
    return keccak(a + b) if a < b else keccak(b + a)


def next_level(level: list[bytes]) -> list[bytes]:
    """The parents of `level`: pairs hashed, an odd last node carried up as is."""
    parents = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def root_and_proof(leaves: list[bytes], index: int) -> tuple[bytes, list[bytes]]:
    """The root over `leaves` and the siblings on the path from `leaves[index]` up (a level with none adds nothing)."""
    level, proof = leaves, []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level, index = next_level(level), index // 2
    return level[0], proof


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
