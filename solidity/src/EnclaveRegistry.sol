// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IEnclaveRegistry, EnclaveRecord} from "./interfaces/IEnclaveRegistry.sol";

/// @notice Allowlists enclave images and registers enclave keys approved by k-of-n attestors.
/// @dev Note: `allowDev` is immutable. A production registry deployed with `allowDev = false`
/// can never accept a development enclave, whoever owns it.
contract EnclaveRegistry is IEnclaveRegistry, EIP712, Ownable2Step {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev keccak256 of the EIP-712 type attestors sign.
    bytes32 public constant REGISTRATION_TYPEHASH = keccak256(
        "Registration(address enclave,bytes32 imageId,uint8 teeType,address payee,uint64 expiresAt,bytes32 quoteHash)"
    );

    /// @notice Lifecycle of an image on the allowlist. Revocation is final.
    enum ImageStatus {
        None,
        Allowed,
        Revoked
    }

    /// @notice An allowlisted (or revoked) image; `index` numbers images in the order they were allowed.
    struct Image {
        ImageStatus status;
        uint8 teeType;
        uint24 index;
    }

    /// @notice A registered key, packed in one slot, so `activePayee` reads it with one SLOAD.
    /// @dev Note: the image is kept as its index; `imageIndex` of a revoked image has its bit set in
    /// `_revokedImages`, the second and last slot `activePayee` reads.
    struct Enclave {
        address payee;
        uint64 expiresAt;
        bool revoked;
        uint24 imageIndex;
    }

    /// @inheritdoc IEnclaveRegistry
    bool public immutable allowDev;

    /// @notice Approvals needed to register a key.
    uint256 public threshold;

    /// @notice How many attestors there are; `threshold` never exceeds it.
    uint256 public attestorCount;

    /// @dev Allowlisted (or revoked) images. Read through `images`.
    mapping(bytes32 imageId => Image) private _images;

    /// @notice Accounts whose approvals count.
    mapping(address attestor => bool) public isAttestor;

    /// @dev Registered keys. A zero `payee` means never registered. Read through `enclaves`.
    mapping(address enclave => Enclave) private _enclaves;

    /// @dev Image ids by index.
    bytes32[] private _imageIds;

    /// @dev Bit `i % 256` of word `i / 256` is set once the image with index `i` is revoked.
    mapping(uint256 word => uint256 bits) private _revokedImages;

    constructor(address owner_, bool allowDev_, address[] memory attestors, uint256 threshold_)
        EIP712("EnclaveRegistry", "1")
        Ownable(owner_)
    {
        allowDev = allowDev_;
        for (uint256 i; i < attestors.length; ++i) {
            _setAttestor(attestors[i], true);
        }
        _setThreshold(threshold_);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        REGISTRATION                        */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc IEnclaveRegistry
    function register(EnclaveRecord calldata record, bytes[] calldata approvals) external {
        if (record.teeType == uint8(TeeType.DEV) && !allowDev) revert DevNotAllowed();
        Image memory image = _images[record.imageId];
        if (image.status != ImageStatus.Allowed) revert ImageNotAllowed(record.imageId);
        if (image.teeType != record.teeType) revert TeeTypeMismatch(image.teeType, record.teeType);
        if (record.enclave == address(0) || record.payee == address(0) || record.expiresAt <= block.timestamp) {
            revert InvalidRecord();
        }
        if (_enclaves[record.enclave].payee != address(0)) revert AlreadyRegistered(record.enclave);
        _checkApprovals(_registrationDigest(record), approvals);

        _enclaves[record.enclave] =
            Enclave({payee: record.payee, expiresAt: record.expiresAt, revoked: false, imageIndex: image.index});
        emit EnclaveRegistered(
            record.enclave, record.imageId, record.teeType, record.payee, record.expiresAt, record.quoteHash
        );
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           ADMIN                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Adds `imageId` to the allowlist for one TEE type.
    function allowImage(bytes32 imageId, uint8 teeType) external onlyOwner {
        if (teeType > uint8(TeeType.TDX)) revert InvalidTeeType(teeType);
        if (teeType == uint8(TeeType.DEV) && !allowDev) revert DevNotAllowed();
        if (_images[imageId].status != ImageStatus.None) revert ImageAlreadyListed(imageId);
        _images[imageId] =
            Image({status: ImageStatus.Allowed, teeType: teeType, index: SafeCast.toUint24(_imageIds.length)});
        _imageIds.push(imageId);
        emit ImageAllowed(imageId, teeType);
    }

    /// @notice Revokes `imageId` for good; every enclave running it stops being active at once.
    function revokeImage(bytes32 imageId) external onlyOwner {
        Image storage image = _images[imageId];
        if (image.status != ImageStatus.Allowed) revert ImageNotAllowed(imageId);
        image.status = ImageStatus.Revoked;
        uint256 index = image.index;
        _revokedImages[index >> 8] |= 1 << (index & 0xff);
        emit ImageRevoked(imageId);
    }

    /// @notice Revokes one enclave key for good.
    function revokeEnclave(address enclave) external onlyOwner {
        if (_enclaves[enclave].payee == address(0)) revert UnknownEnclave(enclave);
        _enclaves[enclave].revoked = true;
        emit EnclaveRevoked(enclave);
    }

    /// @notice Adds or removes an attestor; never leaves fewer attestors than `threshold`.
    function setAttestor(address attestor, bool allowed) external onlyOwner {
        _setAttestor(attestor, allowed);
        if (attestorCount < threshold) revert InvalidThreshold();
    }

    /// @notice Sets how many attestor approvals a registration needs.
    function setThreshold(uint256 threshold_) external onlyOwner {
        _setThreshold(threshold_);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Status and TEE type of `imageId` on the allowlist.
    function images(bytes32 imageId) external view returns (ImageStatus status, uint8 teeType) {
        Image memory image = _images[imageId];
        return (image.status, image.teeType);
    }

    /// @notice The registered record of `enclave`; all zero if it was never registered.
    function enclaves(address enclave)
        external
        view
        returns (bytes32 imageId, address payee, uint64 expiresAt, bool revoked)
    {
        Enclave memory e = _enclaves[enclave];
        if (e.payee == address(0)) return (bytes32(0), address(0), 0, false);
        return (_imageIds[e.imageIndex], e.payee, e.expiresAt, e.revoked);
    }

    /// @inheritdoc IEnclaveRegistry
    function isActive(address enclave) external view returns (bool) {
        return _activePayee(enclave) != address(0);
    }

    /// @inheritdoc IEnclaveRegistry
    function activePayee(address enclave) external view returns (address) {
        return _activePayee(enclave);
    }

    /// @inheritdoc IEnclaveRegistry
    function registrationDigest(EnclaveRecord calldata record) external view returns (bytes32) {
        return _registrationDigest(record);
    }

    /// @notice The EIP-712 domain separator of this deployment.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     INTERNAL FUNCTIONS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev An image goes from Allowed to Revoked and never back, and a key registers only under an Allowed
    /// image, so "its image's bit is clear" is "its image is Allowed".
    function _activePayee(address enclave) private view returns (address) {
        Enclave storage e = _enclaves[enclave];
        (address payee, uint64 expiresAt, bool revoked, uint24 imageIndex) =
            (e.payee, e.expiresAt, e.revoked, e.imageIndex);
        if (payee == address(0) || revoked || expiresAt < block.timestamp) return address(0);
        if (_revokedImages[imageIndex >> 8] & (1 << (imageIndex & 0xff)) != 0) return address(0);
        return payee;
    }

    function _registrationDigest(EnclaveRecord calldata record) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REGISTRATION_TYPEHASH, record)));
    }

    /// @dev Ascending signer order makes duplicates impossible without a seen-set.
    function _checkApprovals(bytes32 digest, bytes[] calldata approvals) private view {
        if (approvals.length < threshold) revert NotEnoughApprovals(approvals.length, threshold);
        address previous;
        for (uint256 i; i < approvals.length; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, approvals[i]);
            if (err != ECDSA.RecoverError.NoError || !isAttestor[signer] || signer <= previous) {
                revert InvalidApproval(i);
            }
            previous = signer;
        }
    }

    function _setAttestor(address attestor, bool allowed) private {
        if (attestor == address(0)) revert InvalidAttestor();
        if (isAttestor[attestor] != allowed) {
            isAttestor[attestor] = allowed;
            if (allowed) ++attestorCount;
            else --attestorCount;
        }
        emit AttestorSet(attestor, allowed);
    }

    function _setThreshold(uint256 threshold_) private {
        if (threshold_ == 0 || threshold_ > attestorCount) revert InvalidThreshold();
        threshold = threshold_;
        emit ThresholdSet(threshold_);
    }
}
