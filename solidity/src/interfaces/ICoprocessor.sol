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
    /// @param requestId The id the Coprocessor assigned to the request
    /// @param consumer The contract that made the request, paid its fee and receives its callback
    /// @param templateId The content hash of the template bundle to run
    /// @param input The ABI-encoded template inputs
    /// @param inputHash The keccak256 hash of `input`
    /// @param callbackGasLimit The exact gas forwarded to the consumer's `onCoprocessorResponse`, in gas
    /// @param fee The fee paid with the request, in wei
    /// @param deadline The Unix time, in seconds, after which the request can no longer be fulfilled, only cancelled
    /// @param anchorBlock The number of the block before the request's; the template reads chain state as of it
    /// @param anchorHash The hash of block `anchorBlock`
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
    /// @param requestId The id of the settled request
    /// @param enclave The enclave key that signed the response
    /// @param status The response's `Status` value: 0 is Ok, anything else is an error
    /// @param callbackSucceeded Whether the consumer's `onCoprocessorResponse` returned without reverting
    event RequestFulfilled(bytes32 indexed requestId, address indexed enclave, uint8 status, bool callbackSucceeded);
    /// @notice Emitted when a fulfilment item is skipped, so a batch never fails because it lost a race.
    /// @param requestId The id of the request the skipped item answers
    /// @param reason Why the item was skipped: the request was already settled, or its deadline had passed
    event FulfillmentSkipped(bytes32 indexed requestId, SkipReason reason);
    /// @notice Emitted when an expired request is cancelled and its fee credited back to the consumer.
    /// @param requestId The id of the cancelled request
    /// @param consumer The contract that made the request and is credited the refund
    /// @param refund The request's whole fee, credited back to the consumer, in wei
    event RequestCancelled(bytes32 indexed requestId, address indexed consumer, uint96 refund);
    /// @notice Emitted when an account withdraws its credited fees or refunds.
    /// @param account The account whose credited balance was withdrawn
    /// @param to The address the ether was sent to
    /// @param amount The amount sent (the account's whole balance), in wei
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice Emitted when an Ok composed response pays a called template's author, out of the requested
    /// template's author fee.
    /// @param templateId The template a `ctx.call` ran
    /// @param author Its author, credited
    /// @param amount The amount credited, in wei
    event CallPaid(bytes32 indexed templateId, address indexed author, uint96 amount);
    /// @notice Emitted when the owner changes a limit.
    /// @param maxInputBytes The largest request input accepted, in bytes
    /// @param maxOutputBytes The largest fulfilment output accepted, in bytes
    /// @param maxCallbackGas The largest callback gas limit a request may set, in gas; zero pauses new requests
    /// @param maxTimeout The longest timeout a request may set, in seconds; zero pauses new requests
    /// @param minFee The least fee a request pays on top of its template's author fee, in wei
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
    /// @dev Items already settled or past their deadline are skipped with `FulfillmentSkipped`. A response whose
    /// template called others carries its call tree after the 65-byte signature: the called template ids, 32
    /// bytes each (at most 16), signed as a `ComposedResponse`; on Ok each callee's author is paid out of the
    /// requested template's author fee (`CallPaid`).
    /// @param fulfillments The enclave-signed responses to settle, each with the request it answers
    function fulfill(Fulfillment[] calldata fulfillments) external;

    /// @notice Cancels a request after its deadline, crediting the fee back to the consumer. Anyone may call.
    /// @param request The request to cancel, field for field as committed when it was made (see `RequestSubmitted`)
    function cancel(Request calldata request) external;

    /// @notice Sends the caller's credited fees or refunds to `to`.
    /// @param to The address that receives the caller's whole credited balance
    function withdraw(address payable to) external;

    /// @notice Where `requestId` stands.
    /// @param requestId The id the Coprocessor assigned to the request
    /// @return The state of the request; None if no request has that id
    function requestState(bytes32 requestId) external view returns (RequestState);

    /// @notice The least fee a request for `templateId` takes: `minFee` plus the template's author fee.
    /// @dev Note: says nothing about whether `templateId` may be requested (published, not deprecated).
    /// @param templateId The content hash of the template bundle
    /// @return The least `msg.value` `request` accepts for `templateId`, in wei
    function requestFee(bytes32 templateId) external view returns (uint256);

    /// @notice Fees and refunds credited to `account` and not yet withdrawn.
    /// @param account The account whose balance to read
    /// @return The amount `account` can withdraw, in wei
    function balanceOf(address account) external view returns (uint256);

    /// @notice The EIP-712 digest an enclave signs for a response.
    /// @param requestId The id of the request being answered
    /// @param commitment The request's commitment, `keccak256(abi.encode(request))`
    /// @param status The response's `Status` value: 0 is Ok, anything else is an error
    /// @param output ABI-encoded template outputs when Ok, else a short UTF-8 reason
    /// @return The digest of the `Response` in this Coprocessor's EIP-712 domain
    function responseDigest(bytes32 requestId, bytes32 commitment, uint8 status, bytes calldata output)
        external
        view
        returns (bytes32);
}
