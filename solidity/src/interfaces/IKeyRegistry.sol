// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEnclaveRegistry} from "./IEnclaveRegistry.sol";

/// @notice Where the cluster publishes each template's public encryption keys, one record per template,
/// accepted only when signed by an active enclave of the EnclaveRegistry.
/// @dev Note: every enclave of a cluster holds the same epoch roots and so derives the same keys for a
/// (template, epoch): a record is signed as EIP-712 `TemplateKeys` in the Coprocessor's domain (the one
/// responses and quotes are signed in; the type hashes differ, so no digest is two things). Senders
/// encrypt inputs to `inputKey` and secrets to `secretsKey` with HPKE (X25519-HKDF-SHA256).
interface IKeyRegistry {
    /// @notice A template's public keys in one epoch. All zero means no keys were ever published.
    /// @dev Note: three slots; the epoch has its own (the two keys use every bit of theirs).
    struct TemplateKeys {
        uint64 epoch;
        bytes32 inputKey;
        bytes32 secretsKey;
    }

    /// @notice Thrown when a key is zero (X25519's all-zero point is a low-order point, never a real key).
    error InvalidKey();
    /// @notice Thrown when the epoch is zero: epochs start at 1, and zero means "none published".
    error InvalidEpoch();
    /// @notice Thrown when the signature is not a well-formed 65-byte, low-`s` ECDSA signature.
    error InvalidSignature();
    /// @notice Thrown when the record was signed by a key that is not an active enclave.
    error SignerNotActive(address signer);
    /// @notice Thrown when the epoch is older than the one already published for the template.
    error StaleEpoch(uint64 current, uint64 given);
    /// @notice Thrown when the template already has other keys in this very epoch.
    error EpochKeysDiffer();

    /// @notice Emitted when a template's keys are published for a new epoch (never for an idempotent republish).
    /// @param templateId The content hash of the template bundle the keys are for
    /// @param epoch The key epoch the keys belong to
    /// @param inputKey The X25519 public key (32 raw bytes) that inputs to the template are encrypted to
    /// @param secretsKey The X25519 public key (32 raw bytes) that the template's secrets are encrypted to
    /// @param signer The active enclave key that signed the record
    event KeysPublished(
        bytes32 indexed templateId, uint64 indexed epoch, bytes32 inputKey, bytes32 secretsKey, address indexed signer
    );

    /// @notice Publishes `templateId`'s keys for `epoch`, signed by an active enclave. Anyone may send it.
    /// @dev Rules, in order: both keys non-zero, the epoch non-zero, the signature by an active enclave,
    /// then, against the template's published record: an older epoch is refused (`StaleEpoch`); the same
    /// epoch with the same keys succeeds and changes nothing (no event), so nodes racing to publish one
    /// record never fail for it; the same epoch with other keys is refused (`EpochKeysDiffer`); a newer
    /// epoch replaces the record.
    /// Note: an epoch's keys are fixed once published. Honest enclaves all derive the same keys, so other
    /// keys for a live epoch come from a compromised enclave, a bug or a split cluster, and first-published
    /// wins: no single enclave can swap the keys senders are encrypting to without moving to a new epoch,
    /// which `KeysPublished` announces. Epochs are ordered, not bounded: an active enclave may publish any
    /// newer epoch, so a compromised one must be revoked in the EnclaveRegistry (and the records it
    /// signed, named by `signer` in the events, re-published by the cluster in a newer epoch).
    /// @param templateId The content hash of the template bundle the keys are for
    /// @param epoch The key epoch the keys belong to; at least the one already published for the template
    /// @param inputKey The X25519 public key (32 raw bytes) that inputs to the template are encrypted to
    /// @param secretsKey The X25519 public key (32 raw bytes) that the template's secrets are encrypted to
    /// @param signature The enclave's 65-byte `r ‖ s ‖ v` signature of `keysDigest(templateId, epoch, inputKey, secretsKey)`
    function publish(bytes32 templateId, uint64 epoch, bytes32 inputKey, bytes32 secretsKey, bytes calldata signature)
        external;

    /// @notice The keys last published for `templateId` (all zero if none were).
    /// @param templateId The content hash of the template bundle
    /// @return The template's epoch and its input and secrets keys in it
    function keysOf(bytes32 templateId) external view returns (TemplateKeys memory);

    /// @notice The highest epoch published for any template (zero before the first record).
    /// @return The greatest `epoch` of every record published so far
    function latestEpoch() external view returns (uint64);

    /// @notice The EIP-712 digest an enclave signs to publish a record: `TemplateKeys` in the Coprocessor's domain.
    /// @param templateId The content hash of the template bundle the keys are for
    /// @param epoch The key epoch the keys belong to
    /// @param inputKey The X25519 public key that inputs to the template are encrypted to
    /// @param secretsKey The X25519 public key that the template's secrets are encrypted to
    /// @return keccak256("\x19\x01" ‖ the Coprocessor's domain separator ‖ the `TemplateKeys` struct hash)
    function keysDigest(bytes32 templateId, uint64 epoch, bytes32 inputKey, bytes32 secretsKey)
        external
        view
        returns (bytes32);

    /// @notice The EIP-712 type hash of a published record.
    /// @return keccak256("TemplateKeys(bytes32 templateId,uint64 epoch,bytes32 inputKey,bytes32 secretsKey)")
    function TEMPLATE_KEYS_TYPEHASH() external view returns (bytes32);

    /// @notice The Coprocessor whose EIP-712 domain records are signed in.
    /// @return The Coprocessor's address, fixed at deployment
    function coprocessor() external view returns (address);

    /// @notice The registry that decides which signers are active enclaves.
    /// @return The EnclaveRegistry's address, fixed at deployment
    function enclaveRegistry() external view returns (IEnclaveRegistry);
}
