// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {IEnclaveRegistry} from "./interfaces/IEnclaveRegistry.sol";
import {IKeyRegistry} from "./interfaces/IKeyRegistry.sol";
import {QuoteLib} from "./libraries/QuoteLib.sol";

/// @notice Publishes each template's public encryption keys, as signed by an active enclave.
/// @dev Note: no owner, nothing to configure. The domain separator is the Coprocessor's own
/// (`Coprocessor.domainSeparator()`, name "Coprocessor", version "1"), computed here rather than asked for,
/// as `QuoteVerifier` does: the Coprocessor is not upgradeable, so the two never differ (tested), and
/// `publish` saves an external call.
contract KeyRegistry is IKeyRegistry {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc IKeyRegistry
    bytes32 public constant TEMPLATE_KEYS_TYPEHASH =
        keccak256("TemplateKeys(bytes32 templateId,uint64 epoch,bytes32 inputKey,bytes32 secretsKey)");

    /// @inheritdoc IKeyRegistry
    address public immutable coprocessor;

    /// @inheritdoc IKeyRegistry
    IEnclaveRegistry public immutable enclaveRegistry;

    /// @dev The Coprocessor's domain separator on the chain this contract was deployed on; recomputed after a fork.
    bytes32 private immutable _cachedSeparator;
    uint256 private immutable _cachedChainId;

    /// @inheritdoc IKeyRegistry
    uint64 public latestEpoch;

    /// @dev The last record published per template. Read through `keysOf`.
    mapping(bytes32 templateId => TemplateKeys) private _keys;

    constructor(address coprocessor_, address enclaveRegistry_) {
        coprocessor = coprocessor_;
        enclaveRegistry = IEnclaveRegistry(enclaveRegistry_);
        _cachedSeparator = QuoteLib.domainSeparator(coprocessor_);
        _cachedChainId = block.chainid;
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          PUBLISH                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc IKeyRegistry
    function publish(bytes32 templateId, uint64 epoch, bytes32 inputKey, bytes32 secretsKey, bytes calldata signature)
        external
    {
        if (inputKey == bytes32(0) || secretsKey == bytes32(0)) revert InvalidKey();
        if (epoch == 0) revert InvalidEpoch();
        (address signer, ECDSA.RecoverError err,) =
            ECDSA.tryRecoverCalldata(_keysDigest(templateId, epoch, inputKey, secretsKey), signature);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
        if (!enclaveRegistry.isActive(signer)) revert SignerNotActive(signer);

        TemplateKeys storage stored = _keys[templateId];
        uint64 current = stored.epoch;
        if (epoch < current) revert StaleEpoch(current, epoch);
        if (epoch == current) {
            // Published already: the same record again is a no-op, another one for this epoch is refused.
            if (stored.inputKey == inputKey && stored.secretsKey == secretsKey) return;
            revert EpochKeysDiffer();
        }

        stored.epoch = epoch;
        stored.inputKey = inputKey;
        stored.secretsKey = secretsKey;
        if (epoch > latestEpoch) latestEpoch = epoch;
        emit KeysPublished(templateId, epoch, inputKey, secretsKey, signer);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc IKeyRegistry
    function keysOf(bytes32 templateId) external view returns (TemplateKeys memory) {
        return _keys[templateId];
    }

    /// @inheritdoc IKeyRegistry
    function keysDigest(bytes32 templateId, uint64 epoch, bytes32 inputKey, bytes32 secretsKey)
        external
        view
        returns (bytes32)
    {
        return _keysDigest(templateId, epoch, inputKey, secretsKey);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     INTERNAL FUNCTIONS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function _keysDigest(bytes32 templateId, uint64 epoch, bytes32 inputKey, bytes32 secretsKey)
        private
        view
        returns (bytes32)
    {
        bytes32 separator = block.chainid == _cachedChainId ? _cachedSeparator : QuoteLib.domainSeparator(coprocessor);
        bytes32 structHash = keccak256(abi.encode(TEMPLATE_KEYS_TYPEHASH, templateId, epoch, inputKey, secretsKey));
        return MessageHashUtils.toTypedDataHash(separator, structHash);
    }
}
