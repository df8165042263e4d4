// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Request, Fulfillment} from "../libraries/RequestLib.sol";

/// @notice Requests off-chain work and settles enclave-signed responses.
interface ICoprocessor {
    /// @notice Where a request stands.
    enum RequestState {
        None,
        Pending,
        Fulfilled,
        Cancelled
    }

    /// @notice Why a fulfilment item was skipped rather than settled.
    enum SkipReason {
        AlreadySettled,
        Expired
    }

    /// @notice Thrown when the fee is below `minFee` plus the template's author fee.
    error FeeTooLow(uint256 fee, uint256 requiredFee);
    /// @notice Thrown when the fee does not fit in a uint96.
    error FeeTooHigh(uint256 fee);
    /// @notice Thrown when the input exceeds `maxInputBytes`.
    error InputTooLarge(uint256 length, uint256 maxLength);
    /// @notice Thrown when the callback gas limit is zero or exceeds `maxCallbackGas`.
    error InvalidCallbackGasLimit(uint256 gasLimit, uint256 maxGasLimit);
    /// @notice Thrown when the timeout is zero or exceeds `maxTimeout`.
    error InvalidTimeout(uint256 timeout, uint256 maxTimeout);
    /// @notice Thrown when a fulfilment's request does not hash to the stored commitment.
    error CommitmentMismatch(bytes32 requestId);
    /// @notice Thrown when a fulfilment carries an unknown status code.
    error InvalidStatus(uint8 status);
    /// @notice Thrown when a fulfilment's output exceeds `maxOutputBytes`.
    error OutputTooLarge(uint256 length, uint256 maxLength);
    /// @notice Thrown when the response signature is malformed.
    error InvalidSignature();
    /// @notice Thrown when the response was signed by a key that is not an active enclave.
    error EnclaveNotActive(address signer);
    /// @notice Thrown when cancelling a request that is not pending.
    error NotPending(bytes32 requestId);
    /// @notice Thrown when cancelling a request before its deadline.
    error DeadlineNotReached(bytes32 requestId, uint64 deadline);
    /// @notice Thrown when a withdrawal transfer fails.
    error WithdrawFailed();
    /// @notice Thrown when requesting a template id the TemplateRegistry has never seen published.
    error UnknownTemplate(bytes32 templateId);
    /// @notice Thrown when requesting a template its author deprecated.
    error TemplateIsDeprecated(bytes32 templateId);

    /// @notice `setLimits` was given limits under which requests could never be answered.
    error InvalidLimits();

    /// @notice Emitted for every request, with every field a node needs to rebuild it.
    event RequestSubmitted(
        bytes32 indexed requestId,
        address indexed consumer,
        bytes32 indexed templateId,
        bytes input,
        bytes32 inputHash,
        uint32 callbackGasLimit,
        uint96 fee,
        uint64 deadline,
        uint64 anchorBlock,
        bytes32 anchorHash
    );
    /// @notice Emitted when a request is settled; `callbackSucceeded` is false if the consumer reverted.
    /// @dev Note: there is no separate fee event. The split follows from `status` and the template's author
    /// fee, which never changes (`TemplateRegistry.authorOf`): Ok credits it to the author, any other status
    /// to the consumer; the payee gets the rest of the request's fee.
    event RequestFulfilled(
        bytes32 indexed requestId, address indexed enclave, uint8 status, bool callbackSucceeded
    );
    /// @notice Emitted when a fulfilment item is skipped, so a batch never fails because it lost a race.
    event FulfillmentSkipped(bytes32 indexed requestId, SkipReason reason);
    /// @notice Emitted when an expired request is cancelled and its fee credited back to the consumer.
    event RequestCancelled(bytes32 indexed requestId, address indexed consumer, uint96 refund);
    /// @notice Emitted when an account withdraws its credited fees or refunds.
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice Emitted when the owner changes a limit.
    event LimitsSet(
        uint32 maxInputBytes, uint32 maxOutputBytes, uint32 maxCallbackGas, uint64 maxTimeout, uint96 minFee
    );

    /// @notice Asks for `templateId` to run on `input`; the fee is `msg.value`, at least `requestFee(templateId)`.
    /// @dev On an Ok response the template's author fee is credited to its author and the rest to the
    /// enclave's payee; on any error status the author fee is credited back to the consumer instead.
    /// @param templateId Content hash of the template bundle, published and not deprecated in the TemplateRegistry.
    /// @param input ABI-encoded template inputs.
    /// @param callbackGasLimit Exact gas forwarded to `onCoprocessorResponse`.
    /// @param timeout Seconds until the request may be cancelled and refunded.
    /// @return requestId keccak256(chainid, this, nonce).
    function request(bytes32 templateId, bytes calldata input, uint32 callbackGasLimit, uint64 timeout)
        external
        payable
        returns (bytes32 requestId);

    /// @notice Settles a batch of enclave-signed responses and calls each consumer back.
    /// @dev Items already settled or past their deadline are skipped with `FulfillmentSkipped`.
    function fulfill(Fulfillment[] calldata fulfillments) external;

    /// @notice Cancels a request after its deadline, crediting the fee back to the consumer. Anyone may call.
    function cancel(Request calldata request) external;

    /// @notice Sends the caller's credited fees or refunds to `to`.
    function withdraw(address payable to) external;

    /// @notice Where `requestId` stands.
    function requestState(bytes32 requestId) external view returns (RequestState);

    /// @notice The least fee a request for `templateId` takes: `minFee` plus the template's author fee.
    /// @dev Note: says nothing about whether `templateId` may be requested (published, not deprecated).
    function requestFee(bytes32 templateId) external view returns (uint256);

    /// @notice Fees and refunds credited to `account` and not yet withdrawn.
    function balanceOf(address account) external view returns (uint256);

    /// @notice The EIP-712 digest an enclave signs for a response.
    function responseDigest(bytes32 requestId, bytes32 commitment, uint8 status, bytes calldata output)
        external
        view
        returns (bytes32);
}
