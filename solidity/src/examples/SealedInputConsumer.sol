// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoprocessorClient} from "../CoprocessorClient.sol";
import {ICoprocessor} from "../interfaces/ICoprocessor.sol";
import {IKeyRegistry} from "../interfaces/IKeyRegistry.sol";

/// @notice A consumer whose requests carry sealed inputs. The requester seals the template's ABI input
///         to its published input key for THIS contract (`coprocessor encrypt TEMPLATE ARGS --consumer
///         <this address>`, or `coprocessor.confidential.encrypt_input`): it opens only inside the
///         cluster's enclaves, only for a request this contract sends, on this chain and Coprocessor.
///         The chain sees ciphertext; the answer is public.
/// @dev The envelope is `version (1) || epoch (8) || enc (32) || ciphertext || tag (16)` (docs/keys.md).
///      Its header is checked here, before the fee is paid, so an input that could never open (not
///      sealed, or to an epoch no enclave holds yet) is refused at once rather than answered INVALID_INPUT.
contract SealedInputConsumer is CoprocessorClient {
    /// @notice Thrown when the template has no keys in the KeyRegistry: nothing could be sealed to it.
    error NoKeysPublished(bytes32 templateId);
    /// @notice Thrown when the input is not a version-1 envelope.
    error NotSealed();
    /// @notice Thrown when the input names an epoch newer than the published one.
    error UnknownEpoch(uint64 sealedTo, uint64 published);

    /// @notice Emitted when the answer to a sealed request arrives.
    event Answered(bytes32 indexed requestId, uint8 status, bytes output);

    /// @notice Callback gas given to every request.
    uint32 public constant CALLBACK_GAS = 200_000;
    /// @notice The smallest envelope: header, encapsulated key and tag around an empty plaintext.
    uint256 public constant MIN_ENVELOPE = 1 + 8 + 32 + 16;

    /// @notice Where the templates' public keys are published.
    IKeyRegistry public immutable keyRegistry;

    /// @notice The output of each answered request (empty until answered, or for an error status).
    mapping(bytes32 requestId => bytes output) public outputs;

    constructor(ICoprocessor coprocessor_, IKeyRegistry keyRegistry_) CoprocessorClient(coprocessor_) {
        keyRegistry = keyRegistry_;
    }

    /// @notice Runs `templateId` on `sealedInput`, sealed for this contract; the fee is `msg.value`.
    /// @param templateId A template whose manifest says `encrypted_input = true`
    /// @param sealedInput The HPKE envelope of the template's ABI input
    /// @param timeout Seconds before the request may be cancelled and refunded
    /// @return requestId The Coprocessor's id of the request
    function askSealed(bytes32 templateId, bytes calldata sealedInput, uint64 timeout)
        external
        payable
        returns (bytes32 requestId)
    {
        uint64 published = keyRegistry.keysOf(templateId).epoch;
        if (published == 0) revert NoKeysPublished(templateId);
        if (sealedInput.length < MIN_ENVELOPE || uint8(sealedInput[0]) != 1) revert NotSealed();
        uint64 sealedTo = uint64(bytes8(sealedInput[1:9]));
        if (sealedTo == 0 || sealedTo > published) revert UnknownEpoch(sealedTo, published);
        requestId = _request(templateId, sealedInput, CALLBACK_GAS, timeout, msg.value);
    }

    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal override {
        if (status == 0) outputs[requestId] = output;
        emit Answered(requestId, status, output);
    }
}
