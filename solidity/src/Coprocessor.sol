// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {ICoprocessor} from "./interfaces/ICoprocessor.sol";
import {ICoprocessorConsumer} from "./interfaces/ICoprocessorConsumer.sol";
import {IEnclaveRegistry} from "./interfaces/IEnclaveRegistry.sol";
import {ITemplateRegistry} from "./interfaces/ITemplateRegistry.sol";
import {ExactGasCall} from "./libraries/ExactGasCall.sol";
import {Request, Fulfillment, Status, RequestLib} from "./libraries/RequestLib.sol";

/// @notice Takes requests for off-chain work and settles enclave-signed responses.
/// @dev Note: fees and refunds are credited and withdrawn (pull payments), so a payee, author or
/// consumer that cannot receive ether never blocks settlement or cancellation.
contract Coprocessor is ICoprocessor, EIP712, Ownable {
    using RequestLib for Request;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Owner-set bounds, packed in one slot.
    struct Limits {
        uint32 maxInputBytes;
        uint32 maxOutputBytes;
        uint32 maxCallbackGas;
        uint64 maxTimeout;
        uint96 minFee;
    }

    /// @dev Stored in place of a commitment once a request is closed. Never a keccak256 output in practice.
    bytes32 private constant FULFILLED = bytes32(uint256(1));
    bytes32 private constant CANCELLED = bytes32(uint256(2));

    /// @notice The registry that decides which signers are attested enclaves.
    IEnclaveRegistry public immutable registry;

    /// @notice The catalogue that says which templates may be requested and what their authors earn.
    ITemplateRegistry public immutable templateRegistry;

    /// @notice Current limits.
    Limits public limits;

    /// @notice Number of requests made so far; feeds request ids.
    uint256 public nonce;

    /// @dev requestId => commitment while pending, FULFILLED or CANCELLED once closed.
    mapping(bytes32 requestId => bytes32) private _commitments;

    /// @dev Credited fees and refunds.
    mapping(address account => uint256) private _balances;

    constructor(IEnclaveRegistry registry_, ITemplateRegistry templateRegistry_, address owner_)
        EIP712("Coprocessor", "1")
        Ownable(owner_)
    {
        registry = registry_;
        templateRegistry = templateRegistry_;
        limits = Limits({
            maxInputBytes: 16 * 1024,
            maxOutputBytes: 16 * 1024,
            maxCallbackGas: 2_000_000,
            maxTimeout: 7 days,
            minFee: 0
        });
        emit LimitsSet(16 * 1024, 16 * 1024, 2_000_000, 7 days, 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     REQUEST LIFECYCLE                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ICoprocessor
    function request(bytes32 templateId, bytes calldata input, uint32 callbackGasLimit, uint64 timeout)
        external
        payable
        returns (bytes32 requestId)
    {
        Limits memory l = limits;
        uint256 requiredFee = uint256(l.minFee) + _authorFeeIfRequestable(templateId);
        if (msg.value < requiredFee) revert FeeTooLow(msg.value, requiredFee);
        if (msg.value > type(uint96).max) revert FeeTooHigh(msg.value);
        if (input.length > l.maxInputBytes) revert InputTooLarge(input.length, l.maxInputBytes);
        if (callbackGasLimit == 0 || callbackGasLimit > l.maxCallbackGas) {
            revert InvalidCallbackGasLimit(callbackGasLimit, l.maxCallbackGas);
        }
        if (timeout == 0 || timeout > l.maxTimeout) revert InvalidTimeout(timeout, l.maxTimeout);

        requestId = keccak256(abi.encode(block.chainid, address(this), nonce++));
        Request memory r = Request({
            requestId: requestId,
            consumer: msg.sender,
            templateId: templateId,
            inputHash: keccak256(input),
            callbackGasLimit: callbackGasLimit,
            fee: uint96(msg.value),
            deadline: uint64(block.timestamp) + timeout,
            anchorBlock: uint64(block.number - 1),
            anchorHash: blockhash(block.number - 1)
        });
        _commitments[requestId] = keccak256(abi.encode(r));
        _emitRequestSubmitted(r, input);
    }

    /// @inheritdoc ICoprocessor
    function fulfill(Fulfillment[] calldata fulfillments) external {
        for (uint256 i; i < fulfillments.length; ++i) {
            _settle(fulfillments[i]);
        }
    }

    /// @inheritdoc ICoprocessor
    function cancel(Request calldata r) external {
        bytes32 stored = _commitments[r.requestId];
        if (stored == FULFILLED || stored == CANCELLED) revert NotPending(r.requestId);
        if (stored != r.commitment()) revert CommitmentMismatch(r.requestId);
        if (block.timestamp <= r.deadline) revert DeadlineNotReached(r.requestId, r.deadline);

        _commitments[r.requestId] = CANCELLED;
        _balances[r.consumer] += r.fee;
        emit RequestCancelled(r.requestId, r.consumer, r.fee);
    }

    /// @inheritdoc ICoprocessor
    function withdraw(address payable to) external {
        uint256 amount = _balances[msg.sender];
        delete _balances[msg.sender];
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert WithdrawFailed();
        emit Withdrawn(msg.sender, to, amount);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           ADMIN                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Sets every limit at once. A zero `maxTimeout` or `maxCallbackGas` pauses new requests.
    function setLimits(Limits calldata newLimits) external onlyOwner {
        limits = newLimits;
        emit LimitsSet(
            newLimits.maxInputBytes,
            newLimits.maxOutputBytes,
            newLimits.maxCallbackGas,
            newLimits.maxTimeout,
            newLimits.minFee
        );
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ICoprocessor
    function requestState(bytes32 requestId) external view returns (RequestState) {
        bytes32 stored = _commitments[requestId];
        if (stored == bytes32(0)) return RequestState.None;
        if (stored == FULFILLED) return RequestState.Fulfilled;
        if (stored == CANCELLED) return RequestState.Cancelled;
        return RequestState.Pending;
    }

    /// @inheritdoc ICoprocessor
    function requestFee(bytes32 templateId) external view returns (uint256) {
        (, uint96 authorFee) = templateRegistry.authorOf(templateId);
        return uint256(limits.minFee) + authorFee;
    }

    /// @inheritdoc ICoprocessor
    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    /// @inheritdoc ICoprocessor
    function responseDigest(bytes32 requestId, bytes32 commitment, uint8 status, bytes calldata output)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(RequestLib.responseStructHash(requestId, commitment, status, output));
    }

    /// @notice The EIP-712 domain separator of this deployment.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     INTERNAL FUNCTIONS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Verifies one fulfilment, splits the fee, then calls the consumer back.
    function _settle(Fulfillment calldata f) private {
        Request calldata r = f.request;
        bytes32 stored = _commitments[r.requestId];
        if (stored == FULFILLED || stored == CANCELLED) {
            emit FulfillmentSkipped(r.requestId, SkipReason.AlreadySettled);
            return;
        }
        bytes32 commitment = r.commitment();
        if (stored != commitment) revert CommitmentMismatch(r.requestId);
        if (f.status > RequestLib.MAX_STATUS) revert InvalidStatus(f.status);
        uint32 maxOutputBytes = limits.maxOutputBytes;
        if (f.output.length > maxOutputBytes) revert OutputTooLarge(f.output.length, maxOutputBytes);

        bytes32 digest =
            _hashTypedDataV4(RequestLib.responseStructHash(r.requestId, commitment, f.status, f.output));
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, f.signature);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
        address payee = registry.activePayee(signer);
        if (payee == address(0)) revert EnclaveNotActive(signer);
        // Checked after the signature, so a `Skipped(Expired)` event always speaks for a real enclave response.
        if (block.timestamp > r.deadline) {
            emit FulfillmentSkipped(r.requestId, SkipReason.Expired);
            return;
        }

        // Close before the external call: a re-entrant fulfil or cancel sees the request settled.
        _commitments[r.requestId] = FULFILLED;
        _creditFee(r, f.status, payee);

        bool callbackSucceeded = ExactGasCall.call(
            r.consumer,
            r.callbackGasLimit,
            abi.encodeCall(ICoprocessorConsumer.onCoprocessorResponse, (r.requestId, f.status, f.output))
        );
        emit RequestFulfilled(r.requestId, signer, f.status, callbackSucceeded);
    }

    /// @dev The author fee of `templateId`; reverts if it was never published or is deprecated.
    function _authorFeeIfRequestable(bytes32 templateId) private view returns (uint96 authorFee) {
        address author;
        bool deprecated;
        (author, authorFee, deprecated) = templateRegistry.termsOf(templateId);
        if (author == address(0)) revert UnknownTemplate(templateId);
        if (deprecated) revert TemplateIsDeprecated(templateId);
    }

    /// @dev Ok: the author fee to the author, the rest to the payee. Any other status: the author fee back
    /// to the consumer, the rest to the payee (the enclave did the work either way). The author fee is read
    /// now, not stored with the request: the registry never changes it, and `request` checked that
    /// `r.fee` covers it, so `r.fee - authorFee` cannot underflow. A free request has no author fee and
    /// skips the registry call.
    function _creditFee(Request calldata r, uint8 status, address payee) private {
        uint96 fee = r.fee;
        if (fee != 0) {
            (address author, uint96 authorFee) = templateRegistry.authorOf(r.templateId);
            if (authorFee != 0) {
                fee -= authorFee;
                _balances[status == uint8(Status.Ok) ? author : r.consumer] += authorFee;
            }
        }
        _balances[payee] += fee;
    }

    /// @dev Split out of `request` to keep the stack shallow.
    function _emitRequestSubmitted(Request memory r, bytes calldata input) private {
        emit RequestSubmitted(
            r.requestId,
            r.consumer,
            r.templateId,
            input,
            r.inputHash,
            r.callbackGasLimit,
            r.fee,
            r.deadline,
            r.anchorBlock,
            r.anchorHash
        );
    }
}
