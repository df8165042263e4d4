// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {ICoprocessor} from "./interfaces/ICoprocessor.sol";
import {IEnclaveRegistry} from "./interfaces/IEnclaveRegistry.sol";
import {ITemplateRegistry} from "./interfaces/ITemplateRegistry.sol";
import {ExactGasCall} from "./libraries/ExactGasCall.sol";
import {Request, Fulfillment, Status, RequestLib} from "./libraries/RequestLib.sol";

/// @notice Takes requests for off-chain work and settles enclave-signed responses.
/// @dev Note: fees and refunds are credited and withdrawn (pull payments), so a payee, author or
/// consumer that cannot receive ether never blocks settlement or cancellation.
contract Coprocessor is ICoprocessor, EIP712, Ownable2Step {
    using RequestLib for Request;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Owner-set bounds, packed in one slot.
    /// @notice The smallest output cap `setLimits` accepts: an error status's reason always fits.
    uint32 public constant MIN_OUTPUT_BYTES = 256;

    struct Limits {
        uint32 maxInputBytes;
        uint32 maxOutputBytes;
        uint32 maxCallbackGas;
        uint64 maxTimeout;
        uint96 minFee;
    }

    /// @dev What one `fulfill` call remembers from item to item: the last signer and its payee, the last
    /// paid template and its terms, and the fees earned by that payee and that author and not yet credited
    /// (see `_creditFee`). A node signs its batch with its one enclave key and the batch's requests mostly
    /// share a few templates, so each is looked up about once per batch and each credit written once.
    struct Batch {
        address signer;
        address payee;
        uint256 owedToPayee;
        bytes32 templateId;
        uint256 terms;
        address author;
        uint256 owedToAuthor;
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

    /// @dev templateId => `author << 96 | authorFee`, copied from the TemplateRegistry at the template's first
    /// paid fulfilment. Both are immutable there, so the copy never goes stale; zero means not copied yet.
    mapping(bytes32 templateId => uint256) private _templateTerms;

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
        Batch memory batch;
        uint256 freeMemory;
        assembly ("memory-safe") {
            freeMemory := mload(0x40)
        }
        for (uint256 i; i < fulfillments.length; ++i) {
            _settle(fulfillments[i], batch);
            // Nothing an item allocates outlives it: give its memory back, so a batch's memory cost stays linear.
            assembly ("memory-safe") {
                mstore(0x40, freeMemory)
            }
        }
        _creditPayee(batch);
        _creditAuthor(batch);
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
    /// @dev Refuses limits under which a request could never be answered: an output cap below
    /// `MIN_OUTPUT_BYTES` (an error status carries its reason, up to 256 bytes), or a callback gas
    /// cap above the block gas limit (no fulfil transaction could give the callback that much).
    function setLimits(Limits calldata newLimits) external onlyOwner {
        if (newLimits.maxOutputBytes < MIN_OUTPUT_BYTES) revert InvalidLimits();
        if (newLimits.maxCallbackGas > block.gaslimit) revert InvalidLimits();
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
        return RequestLib.responseDigest(_domainSeparatorV4(), requestId, commitment, status, output);
    }

    /// @notice The EIP-712 domain separator of this deployment.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     INTERNAL FUNCTIONS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Verifies one fulfilment, splits the fee, then calls the consumer back.
    function _settle(Fulfillment calldata f, Batch memory batch) private {
        Request calldata r = f.request;
        bytes32 requestId = r.requestId;
        bytes32 stored = _commitments[requestId];
        if (stored == FULFILLED || stored == CANCELLED) {
            emit FulfillmentSkipped(requestId, SkipReason.AlreadySettled);
            return;
        }
        bytes32 commitment = r.commitment();
        if (stored != commitment) revert CommitmentMismatch(requestId);
        uint8 status = f.status;
        if (status > RequestLib.MAX_STATUS) revert InvalidStatus(status);
        bytes calldata output = f.output;
        uint32 maxOutputBytes = limits.maxOutputBytes;
        if (output.length > maxOutputBytes) revert OutputTooLarge(output.length, maxOutputBytes);

        // A composed response (its template called others) carries its call tree after the 65-byte signature.
        bool composed = f.signature.length != 65;
        bytes32 digest = composed
            ? _composedDigest(f.signature, requestId, commitment, status, output)
            : RequestLib.responseDigest(_domainSeparatorV4(), requestId, commitment, status, output);
        address signer = RequestLib.signer(digest, composed ? f.signature[0:65] : f.signature);
        if (signer == address(0)) revert InvalidSignature();
        _checkEnclave(signer, batch);
        // Checked after the signature, so a `Skipped(Expired)` event always speaks for a real enclave response.
        if (block.timestamp > r.deadline) {
            emit FulfillmentSkipped(requestId, SkipReason.Expired);
            return;
        }

        // Close before the external call: a re-entrant fulfil or cancel sees the request settled.
        _commitments[requestId] = FULFILLED;
        _creditFee(r, status, batch);
        if (composed && r.fee != 0) {
            _creditCalls(f.signature[65:], batch, status, r.consumer);
        }

        bool callbackSucceeded =
            ExactGasCall.call(r.consumer, r.callbackGasLimit, RequestLib.callbackData(requestId, status, output));
        emit RequestFulfilled(requestId, signer, status, callbackSucceeded);
    }

    /// @dev The digest of a composed response, whose call tree follows the 65-byte signature. Reverts with
    /// `InvalidSignature` unless the tree is 1 to `MAX_CALLS` template ids (a shorter signature included).
    function _composedDigest(
        bytes calldata signature,
        bytes32 requestId,
        bytes32 commitment,
        uint8 status,
        bytes calldata output
    ) private view returns (bytes32) {
        (, bytes calldata calls, bool wellFormed) = RequestLib.splitCalls(signature);
        if (!wellFormed || calls.length == 0) revert InvalidSignature();
        return RequestLib.composedResponseDigest(_domainSeparatorV4(), requestId, commitment, status, output, calls);
    }

    /// @dev Reverts unless `signer` is an active enclave (`registry.activePayee` is not zero) and makes its payee
    /// the batch's current payee. The registry is asked again only when the signer differs from the previous
    /// item's.
    /// @dev Note: so a revocation made from inside a consumer's callback in the middle of a batch (only the
    /// registry's owner can revoke) applies from the next signer change or `fulfill` call.
    function _checkEnclave(address signer, Batch memory batch) private {
        if (signer == batch.signer) return;
        address payee = registry.activePayee(signer);
        if (payee == address(0)) revert EnclaveNotActive(signer);
        batch.signer = signer;
        if (payee != batch.payee) {
            _creditPayee(batch);
            batch.payee = payee;
        }
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
    /// skips the registry.
    /// @dev Note: what the payee (`batch.payee`, the signer's) and the author earn is added up in `batch` and
    /// credited when the payee or author changes or the batch ends: the same sums, fewer storage writes. A
    /// refund to the consumer is credited at once, before its callback, as it may withdraw it there.
    function _creditFee(Request calldata r, uint8 status, Batch memory batch) private {
        uint96 fee = r.fee;
        if (fee == 0) return;
        bytes32 templateId = r.templateId;
        // Loaded terms are never zero: a published template has an author.
        if (templateId != batch.templateId || batch.terms == 0) _loadTerms(templateId, batch);
        uint96 authorFee = uint96(batch.terms);
        if (authorFee != 0) {
            fee -= authorFee;
            if (status == uint8(Status.Ok)) batch.owedToAuthor += authorFee;
            else _balances[r.consumer] += authorFee;
        }
        batch.owedToPayee += fee;
    }

    /// @dev Pays the authors of the templates a response's calls ran to Ok, out of the requested template's author fee
    /// (just credited by `_creditFee`: owed to its author on Ok, refunded to the consumer otherwise):
    /// each in the order the calls ended, as much of its own author fee as is left. The callees did their work
    /// whatever the caller made of it, so they are paid on any status. A template's author fee is thus what it pays
    /// for the templates it calls; an unpublished callee is owed nothing.
    function _creditCalls(bytes calldata calls, Batch memory batch, uint8 status, address consumer) private {
        uint96 left = uint96(batch.terms);
        uint96 paid;
        for (uint256 offset; offset < calls.length && left != 0; offset += 32) {
            bytes32 callee = bytes32(calls[offset:offset + 32]);
            uint256 terms = _authorTerms(callee);
            uint96 fee = uint96(terms);
            if (fee > left) fee = left;
            if (fee == 0) continue;
            left -= fee;
            paid += fee;
            address author = address(uint160(terms >> 96));
            _balances[author] += fee;
            emit CallPaid(callee, author, fee);
        }
        if (status == uint8(Status.Ok)) batch.owedToAuthor -= paid;
        else _balances[consumer] -= paid;
    }

    /// @dev Makes `templateId` the batch's current template.
    function _loadTerms(bytes32 templateId, Batch memory batch) private {
        uint256 terms = _authorTerms(templateId);
        batch.templateId = templateId;
        batch.terms = terms;
        address author = address(uint160(terms >> 96));
        if (author != batch.author) {
            _creditAuthor(batch);
            batch.author = author;
        }
    }

    /// @dev `templateRegistry.authorOf(templateId)` as `author << 96 | authorFee`, from this contract's copy once
    /// it has one. The author and author fee of a published template never change, so the copy always equals
    /// the registry's answer.
    function _authorTerms(bytes32 templateId) private returns (uint256 terms) {
        terms = _templateTerms[templateId];
        if (terms != 0) return terms;
        (address author, uint96 authorFee) = templateRegistry.authorOf(templateId);
        terms = uint256(uint160(author)) << 96 | authorFee;
        // A requested template is always published (non-zero author); anything else is not copied.
        if (author != address(0)) _templateTerms[templateId] = terms;
    }

    /// @dev Credits the fees `batch` owes its current payee.
    function _creditPayee(Batch memory batch) private {
        uint256 owed = batch.owedToPayee;
        if (owed == 0) return;
        batch.owedToPayee = 0;
        _balances[batch.payee] += owed;
    }

    /// @dev Credits the author fees `batch` owes its current author.
    function _creditAuthor(Batch memory batch) private {
        uint256 owed = batch.owedToAuthor;
        if (owed == 0) return;
        batch.owedToAuthor = 0;
        _balances[batch.author] += owed;
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
