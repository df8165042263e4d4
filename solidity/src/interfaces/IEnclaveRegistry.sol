// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What an attestor approved about one enclave key.
/// @dev Note: attestors check off-chain that the quote's report data commits to
/// (enclave, payee, chain id, registry, nonce) and that `quoteHash` is the quote's keccak256.
struct EnclaveRecord {
    address enclave;
    bytes32 imageId;
    uint8 teeType;
    address payee;
    uint64 expiresAt;
    bytes32 quoteHash;
}

/// @notice Registry of attested enclave signing keys.
interface IEnclaveRegistry {
    /// @notice Kinds of execution boundary. DEV is a development mode and is not secure.
    enum TeeType {
        DEV,
        SGX,
        TDX
    }

    /// @notice Thrown when the image is not on the allowlist (or was revoked).
    error ImageNotAllowed(bytes32 imageId);
    /// @notice Thrown when an image is allowed twice or a revoked image is allowed again.
    error ImageAlreadyListed(bytes32 imageId);
    /// @notice Thrown when a DEV enclave or image is offered to a registry deployed with `allowDev = false`.
    error DevNotAllowed();
    /// @notice Thrown when a TEE type is not one of `TeeType`.
    error InvalidTeeType(uint8 teeType);
    /// @notice Thrown when the record's TEE type differs from the type its image was allowed for.
    error TeeTypeMismatch(uint8 expected, uint8 actual);
    /// @notice Thrown when a key is registered a second time.
    error AlreadyRegistered(address enclave);
    /// @notice Thrown when the record is already expired, or has no enclave or payee.
    error InvalidRecord();
    /// @notice Thrown when an approval is not from an attestor, or approvals are not in ascending signer order.
    error InvalidApproval(uint256 index);
    /// @notice Thrown when fewer than `threshold` approvals were given.
    error NotEnoughApprovals(uint256 given, uint256 threshold);
    /// @notice Thrown when the threshold would be zero or above the number of attestors.
    error InvalidThreshold();
    /// @notice Thrown when an attestor to add or remove is the zero address.
    error InvalidAttestor();
    /// @notice Thrown when revoking an enclave that was never registered.
    error UnknownEnclave(address enclave);

    /// @notice Emitted when an image is added to the allowlist.
    /// @param imageId The measurement identifying the enclave image
    /// @param teeType The `TeeType` the image is allowed for; enclaves running it must register with that type
    event ImageAllowed(bytes32 indexed imageId, uint8 teeType);
    /// @notice Emitted when an image is revoked; every enclave running it stops being active.
    /// @param imageId The measurement identifying the revoked image
    event ImageRevoked(bytes32 indexed imageId);
    /// @notice Emitted when an attestor is added or removed.
    /// @param attestor The attestor's address
    /// @param allowed Whether the attestor's approvals now count
    event AttestorSet(address indexed attestor, bool allowed);
    /// @notice Emitted when the approval threshold changes.
    /// @param threshold The number of attestor approvals a registration now needs
    event ThresholdSet(uint256 threshold);
    /// @notice Emitted when an enclave key is registered.
    /// @param enclave The address of the enclave's signing key
    /// @param imageId The measurement identifying the image the enclave runs
    /// @param teeType The enclave's `TeeType`
    /// @param payee The address credited with the fees the enclave earns
    /// @param expiresAt The Unix time, in seconds, after which the key is no longer active
    /// @param quoteHash The keccak256 hash of the attestation quote the attestors checked
    event EnclaveRegistered(
        address indexed enclave, bytes32 indexed imageId, uint8 teeType, address payee, uint64 expiresAt, bytes32 quoteHash
    );
    /// @notice Emitted when an enclave key is revoked.
    /// @param enclave The address of the revoked signing key
    event EnclaveRevoked(address indexed enclave);

    /// @notice Whether DEV enclaves may register. Fixed at deployment.
    /// @return Whether DEV images may be allowed and DEV enclaves registered
    function allowDev() external view returns (bool);

    /// @notice Registers an enclave key approved by at least `threshold` attestors.
    /// @param record The enclave's key, image, TEE type, payee, expiry and quote hash.
    /// @param approvals EIP-712 `Registration` signatures, sorted by strictly ascending signer address.
    function register(EnclaveRecord calldata record, bytes[] calldata approvals) external;

    /// @notice Whether `enclave` is registered, unrevoked, unexpired and runs an allowed image.
    /// @param enclave The address of the enclave's signing key
    /// @return Whether the enclave is active, so its signatures are accepted
    function isActive(address enclave) external view returns (bool);

    /// @notice The payee of `enclave` if it is active, else the zero address.
    /// @param enclave The address of the enclave's signing key
    /// @return The address credited with the enclave's fees, or the zero address if the enclave is not active
    function activePayee(address enclave) external view returns (address);

    /// @notice The EIP-712 digest attestors sign to approve `record`.
    /// @param record The enclave record to approve
    /// @return The digest of the `Registration` in this registry's EIP-712 domain
    function registrationDigest(EnclaveRecord calldata record) external view returns (bytes32);
}
