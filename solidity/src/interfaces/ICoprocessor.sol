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

    /// @notice Thrown when the fee is below `minFee`.
    error FeeTooLow(uint256 fee, uint256 minFee);
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

    /// @notice Asks for `templateId` to run on `input`; the fee is `msg.value`.
    /// @param templateId Content hash of the template bundle.
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

    /// @notice Fees and refunds credited to `account` and not yet withdrawn.
    function balanceOf(address account) external view returns (uint256);

    /// @notice The EIP-712 digest an enclave signs for a response.
    function responseDigest(bytes32 requestId, bytes32 commitment, uint8 status, bytes calldata output)
        external
        view
        returns (bytes32);
}
