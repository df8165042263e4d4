// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {Coprocessor} from "./Coprocessor.sol";
import {ForwardingClient} from "./ForwardingClient.sol";
import {ICoprocessor} from "./interfaces/ICoprocessor.sol";
import {ISponsoredConsumer} from "./interfaces/ISponsoredConsumer.sol";
import {ISponsorships} from "./interfaces/ISponsorships.sol";
import {ITemplateRegistry} from "./interfaces/ITemplateRegistry.sol";
import {Request, Status} from "./libraries/RequestLib.sol";

/// @notice Sponsor balances with per-key limits: jobs submitted by a node (from HTTP clients) and paid by a sponsor,
/// each run as an ordinary Coprocessor request made by this contract.
/// @dev Note: where the ether is. Free balances are held here; a job's fee goes to the Coprocessor with its request.
/// The Coprocessor credits refunds to this contract (the consumer of every job), never pushes them: the whole fee of
/// a cancelled (expired) job, the author fee of a job answered with an error status. Each is attributed to its
/// sponsor's balance as it is known (`reclaim`, `_onResponse`), while the ether stays credited at the Coprocessor
/// until this contract needs it (`ForwardingClient._ensureBalance`). So `address(this).balance +
/// coprocessor.balanceOf(this)` is always at least the sum of the balances (tested, with an invariant test); the
/// fees of jobs in flight belong to the Coprocessor until they settle.
/// @dev Note: what a node can do with a sponsor's money. Nothing but submit jobs the sponsor's keys allow: a
/// `Signer` key's jobs exactly as signed, a `Relayed` key's jobs (if the node is its relayer) of its own choosing
/// within the key's consumer, template, fee, allowance, rate and expiry limits. Every fee goes to the Coprocessor
/// for a real request, whose payee is the answering enclave's; nothing is ever sent from a balance but to its sponsor.
contract Sponsorships is ISponsorships, ForwardingClient, EIP712 {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev A key's first slot, read and written by every job: its money limits and its rate window's count. The
    /// window index is `block.timestamp / window` truncated to 32 bits: two windows compare equal only if they are
    /// the same or 2**32 windows (136 years at one second) apart.
    struct Usage {
        uint96 allowance;
        uint96 maxFeePerJob;
        uint32 windowIndex;
        uint16 jobsInWindow;
        uint16 maxJobsPerWindow;
    }

    /// @dev A key's second slot, read by every job. `kind` None means the key is not set.
    struct Terms {
        address relayer;
        uint40 expiresAt;
        uint32 window;
        KeyKind kind;
        bool templateRestricted;
    }

    /// @dev A key's third slot, read by every job: the allowed consumer and the key's index in `_keyRefs`, assigned at
    /// its first `setKey` and kept forever.
    struct Scope {
        address consumer;
        uint64 index;
    }

    /// @dev A key: three slots, and a fourth for `templateId`, written and read only when `templateRestricted`.
    struct Key {
        Usage usage;
        Terms terms;
        Scope scope;
        bytes32 templateId;
    }

    /// @dev Who a key index stands for: written once, at the key id's first `setKey`.
    struct KeyRef {
        address sponsor;
        bytes32 keyId;
    }

    /// @dev An unsettled job, two slots: where its result goes, under which key it was paid, what its request paid and
    /// what the Coprocessor refunds on an error status (its template's author fee, which never changes).
    struct JobRecord {
        address consumer;
        uint32 callbackGas;
        uint64 keyIndex;
        uint96 fee;
        uint96 authorFee;
    }

    /// @inheritdoc ISponsorships
    bytes32 public constant JOB_TYPEHASH = keccak256(
        "Job(address sponsor,bytes32 keyId,address consumer,bytes32 templateId,bytes input,uint32 callbackGas,"
        "uint64 timeout,uint256 nonce,uint64 deadline)"
    );

    /// @inheritdoc ISponsorships
    /// @dev Covers, in the worst case (cold storage, an error status whose author fee is credited to a sponsor's
    /// empty balance and to its key's allowance, a `MAX_OUTPUT_BYTES` output), everything `_onResponse` spends
    /// besides the consumer's own gas and the 1/64 it must keep: about 57k gas (22k of it the balance written from zero),
    /// so over 20k are spare (tested). Gas asked for but unused costs nobody.
    uint32 public constant CALLBACK_OVERHEAD = 80_000;

    /// @inheritdoc ISponsorships
    uint256 public constant MAX_OUTPUT_BYTES = 16 * 1024;

    /// @inheritdoc ISponsorships
    ITemplateRegistry public immutable templateRegistry;

    /// @dev The number of key ids ever set; indexes run from 1 to it.
    uint64 private _keyCount;

    mapping(address sponsor => uint256) private _balances;

    mapping(address sponsor => mapping(bytes32 keyId => Key)) private _keys;

    mapping(uint64 index => KeyRef) private _keyRefs;

    /// @dev Used nonces per (sponsor, key): bit `nonce & 255` of word `nonce >> 8`.
    mapping(address sponsor => mapping(bytes32 keyId => mapping(uint256 word => uint256 bits))) private _nonces;

    /// @dev requestId => the job it carries, deleted when the job settles or is reclaimed.
    mapping(bytes32 requestId => JobRecord) private _jobs;

    constructor(ICoprocessor coprocessor_) ForwardingClient(coprocessor_) EIP712("Sponsorships", "1") {
        templateRegistry = Coprocessor(address(coprocessor_)).templateRegistry();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          BALANCES                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ISponsorships
    function deposit() external payable {
        uint256 balance = _balances[msg.sender] + msg.value;
        _balances[msg.sender] = balance;
        emit Deposited(msg.sender, msg.value, balance);
    }

    /// @inheritdoc ISponsorships
    function withdraw(uint256 amount, address payable to) external {
        uint256 balance = _balances[msg.sender];
        if (amount > balance) revert InsufficientBalance(balance, amount);
        _balances[msg.sender] = balance - amount;
        emit Withdrawn(msg.sender, to, amount);
        if (!_pay(to, amount)) revert TransferFailed();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            KEYS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ISponsorships
    function setKey(bytes32 keyId, KeyConfig calldata config) external {
        _checkConfig(keyId, config);
        Key storage key = _keys[msg.sender][keyId];

        uint64 index = key.scope.index;
        if (index == 0) {
            index = ++_keyCount;
            _keyRefs[index] = KeyRef({sponsor: msg.sender, keyId: keyId});
        }
        // The rate window's count survives a change of terms that keeps the window.
        Terms memory previous = key.terms;
        bool keepCount = previous.kind != KeyKind.None && previous.window == config.window;
        Usage memory usage = key.usage;
        key.usage = Usage({
            allowance: config.allowance,
            maxFeePerJob: config.maxFeePerJob,
            windowIndex: keepCount ? usage.windowIndex : 0,
            jobsInWindow: keepCount ? usage.jobsInWindow : 0,
            maxJobsPerWindow: config.maxJobsPerWindow
        });
        bool templateRestricted = config.templateId != bytes32(0);
        key.terms = Terms({
            relayer: config.relayer,
            expiresAt: config.expiresAt,
            window: config.window,
            kind: config.kind,
            templateRestricted: templateRestricted
        });
        key.scope = Scope({consumer: config.consumer, index: index});
        if (templateRestricted) key.templateId = config.templateId;
        emit KeySet(msg.sender, keyId, config);
    }

    /// @inheritdoc ISponsorships
    function revokeKey(bytes32 keyId) external {
        Key storage key = _keys[msg.sender][keyId];
        if (key.terms.kind == KeyKind.None) revert UnknownKey(msg.sender, keyId);
        // The scope and template slots are ignored while the kind is None; the index is kept for the next `setKey`.
        delete key.usage;
        delete key.terms;
        emit KeyRevoked(msg.sender, keyId);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            JOBS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ISponsorships
    function submit(Job calldata job, bytes calldata signature) external returns (bytes32 requestId) {
        address sponsor = job.sponsor;
        Key storage key = _keys[sponsor][job.keyId];
        uint64 keyIndex = _authorize(key, job, signature);
        _useNonce(sponsor, job.keyId, job.nonce);
        uint256 fee = coprocessor.requestFee(job.templateId);
        _charge(key, sponsor, fee);
        return _requestJob(job, keyIndex, fee);
    }

    /// @inheritdoc ISponsorships
    function reclaim(Request calldata request) external {
        bytes32 requestId = request.requestId;
        JobRecord memory record = _jobs[requestId];
        if (record.keyIndex == 0) revert UnknownJob(requestId);
        // Reverts unless `request` is the committed one and its deadline has passed.
        if (!_cancelExpired(request)) revert JobNotCancellable(requestId);
        delete _jobs[requestId];
        KeyRef storage ref = _keyRefs[record.keyIndex];
        _refund(requestId, ref.sponsor, ref.keyId, record.fee);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ISponsorships
    function balanceOf(address sponsor) external view returns (uint256) {
        return _balances[sponsor];
    }

    /// @inheritdoc ISponsorships
    function keyOf(address sponsor, bytes32 keyId)
        external
        view
        returns (KeyConfig memory config, uint16 jobsInWindow)
    {
        Key storage key = _keys[sponsor][keyId];
        Terms memory terms = key.terms;
        if (terms.kind == KeyKind.None) return (config, 0);
        Usage memory usage = key.usage;
        config = KeyConfig({
            kind: terms.kind,
            relayer: terms.relayer,
            consumer: key.scope.consumer,
            templateId: terms.templateRestricted ? key.templateId : bytes32(0),
            maxFeePerJob: usage.maxFeePerJob,
            allowance: usage.allowance,
            maxJobsPerWindow: usage.maxJobsPerWindow,
            window: terms.window,
            expiresAt: terms.expiresAt
        });
        if (terms.window != 0 && usage.windowIndex == uint32(block.timestamp / terms.window)) {
            jobsInWindow = usage.jobsInWindow;
        }
    }

    /// @inheritdoc ISponsorships
    function jobOf(bytes32 requestId)
        external
        view
        returns (address sponsor, bytes32 keyId, address consumer, uint32 callbackGas, uint96 fee)
    {
        JobRecord memory record = _jobs[requestId];
        if (record.keyIndex == 0) return (address(0), bytes32(0), address(0), 0, 0);
        KeyRef memory ref = _keyRefs[record.keyIndex];
        return (ref.sponsor, ref.keyId, record.consumer, record.callbackGas, record.fee);
    }

    /// @inheritdoc ISponsorships
    function jobDigest(Job calldata job) external view returns (bytes32) {
        return _jobDigest(job);
    }

    /// @inheritdoc ISponsorships
    function nonceUsed(address sponsor, bytes32 keyId, uint256 nonce) external view returns (bool) {
        return _nonces[sponsor][keyId][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc ISponsorships
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     INTERNAL FUNCTIONS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Settles a job: forgets it, credits the author fee the Coprocessor refunded on an error status, then
    /// forwards the result to the consumer with exactly its callback gas. Never reverts (the Coprocessor would keep
    /// the request settled and this bookkeeping would be lost): `CALLBACK_OVERHEAD` covers everything but the
    /// consumer's call, a reverting consumer is caught, and an output over `MAX_OUTPUT_BYTES` (only if the
    /// Coprocessor's owner raised its cap) is not copied, so its memory cost cannot run this frame out of gas.
    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal override {
        JobRecord storage record = _jobs[requestId];
        uint64 keyIndex = record.keyIndex;
        // Every request this contract makes is recorded, and the Coprocessor calls back once per request.
        if (keyIndex == 0) return;
        address consumer = record.consumer;
        uint32 callbackGas = record.callbackGas;
        uint96 refund = status == uint8(Status.Ok) ? 0 : record.authorFee;
        delete _jobs[requestId];

        KeyRef storage ref = _keyRefs[keyIndex];
        address sponsor = ref.sponsor;
        if (refund != 0) _refund(requestId, sponsor, ref.keyId, refund);

        bool consumerSucceeded;
        if (output.length <= MAX_OUTPUT_BYTES) {
            consumerSucceeded = _forwardExactly(
                consumer,
                callbackGas,
                abi.encodeCall(ISponsoredConsumer.onSponsoredJob, (requestId, sponsor, status, output))
            );
        }
        emit JobSettled(requestId, status, consumerSucceeded);
    }

    /// @dev Checks everything a job needs from its key but money and rate: the key is set and not expired, the job
    /// is authorised (its relayer sends it, or its signer signed it), its deadline has not passed, its consumer and
    /// template are allowed and its callback gas usable. Returns the key's index.
    function _authorize(Key storage key, Job calldata job, bytes calldata signature)
        private
        view
        returns (uint64 keyIndex)
    {
        Terms memory terms = key.terms;
        if (terms.kind == KeyKind.None) revert UnknownKey(job.sponsor, job.keyId);
        if (terms.expiresAt != 0 && block.timestamp >= terms.expiresAt) {
            revert KeyExpired(job.sponsor, job.keyId, terms.expiresAt);
        }
        if (terms.kind == KeyKind.Relayed) {
            if (msg.sender != terms.relayer) revert NotRelayer(msg.sender, terms.relayer);
        } else {
            // A Signer key's id is its address (checked by `setKey`).
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(_jobDigest(job), signature);
            if (err != ECDSA.RecoverError.NoError || signer != address(uint160(uint256(job.keyId)))) {
                revert InvalidJobSignature();
            }
        }
        if (block.timestamp > job.deadline) revert JobDeadlinePassed(job.deadline);

        address consumer = job.consumer;
        if (consumer == address(0)) revert InvalidConsumer();
        Scope memory scope = key.scope;
        if (scope.consumer != address(0) && consumer != scope.consumer) {
            revert ConsumerNotAllowed(consumer, scope.consumer);
        }
        if (terms.templateRestricted) {
            bytes32 allowed = key.templateId;
            if (job.templateId != allowed) revert TemplateNotAllowed(job.templateId, allowed);
        }
        uint32 callbackGas = job.callbackGas;
        if (callbackGas == 0 || _forwardingGas(callbackGas, CALLBACK_OVERHEAD) > type(uint32).max) {
            revert InvalidCallbackGas(callbackGas);
        }
        return scope.index;
    }

    /// @dev Sends a paid job's Coprocessor request and records the job.
    function _requestJob(Job calldata job, uint64 keyIndex, uint256 fee) private returns (bytes32 requestId) {
        bytes32 templateId = job.templateId;
        // What the Coprocessor credits back on an error status; a free request has none.
        uint96 authorFee;
        if (fee != 0) (, authorFee) = templateRegistry.authorOf(templateId);

        _ensureBalance(fee);
        uint32 callbackGas = job.callbackGas;
        requestId =
            _request(templateId, job.input, uint32(_forwardingGas(callbackGas, CALLBACK_OVERHEAD)), job.timeout, fee);
        _jobs[requestId] = JobRecord({
            consumer: job.consumer, callbackGas: callbackGas, keyIndex: keyIndex, fee: uint96(fee), authorFee: authorFee
        });
        emit JobSubmitted(requestId, job.sponsor, job.keyId, job.consumer, templateId, job.nonce, uint96(fee));
    }

    /// @dev Marks `nonce` used under (sponsor, key); reverts if it was.
    function _useNonce(address sponsor, bytes32 keyId, uint256 nonce) private {
        mapping(uint256 => uint256) storage words = _nonces[sponsor][keyId];
        uint256 bit = 1 << (nonce & 0xff);
        uint256 bits = words[nonce >> 8];
        if (bits & bit != 0) revert NonceAlreadyUsed(sponsor, keyId, nonce);
        words[nonce >> 8] = bits | bit;
    }

    /// @dev Checks `fee` against the key's per-job cap, its allowance and the sponsor's balance, counts the job in the
    /// key's rate window (fixed windows: window k covers [k * window, (k + 1) * window)), then debits the allowance
    /// and the balance.
    function _charge(Key storage key, address sponsor, uint256 fee) private {
        Usage memory usage = key.usage;
        if (fee > usage.maxFeePerJob) revert FeeAboveKeyLimit(fee, usage.maxFeePerJob);
        if (fee > usage.allowance) revert AllowanceExceeded(fee, usage.allowance);
        uint256 balance = _balances[sponsor];
        if (fee > balance) revert InsufficientBalance(balance, fee);

        uint32 window = key.terms.window;
        if (window != 0) {
            uint256 index = block.timestamp / window;
            uint16 used = usage.windowIndex == uint32(index) ? usage.jobsInWindow : 0;
            if (used >= usage.maxJobsPerWindow) revert RateLimited((index + 1) * window);
            usage.windowIndex = uint32(index);
            usage.jobsInWindow = used + 1;
        }
        usage.allowance -= uint96(fee);
        key.usage = usage;
        _balances[sponsor] = balance - fee;
    }

    /// @dev Credits a refund the Coprocessor made for a job to its sponsor's balance and, if the key is still set, to
    /// its allowance (saturating at the largest uint96).
    function _refund(bytes32 requestId, address sponsor, bytes32 keyId, uint96 amount) private {
        if (amount != 0) {
            _balances[sponsor] += amount;
            Key storage key = _keys[sponsor][keyId];
            if (key.terms.kind != KeyKind.None) {
                uint256 allowance = uint256(key.usage.allowance) + amount;
                key.usage.allowance = allowance > type(uint96).max ? type(uint96).max : uint96(allowance);
            }
        }
        emit JobRefunded(requestId, sponsor, keyId, amount);
    }

    /// @dev Reverts unless `config` is a usable key of its kind under `keyId`.
    function _checkConfig(bytes32 keyId, KeyConfig calldata config) private view {
        KeyKind kind = config.kind;
        if (kind == KeyKind.None) revert InvalidKeyKind();
        if (keyId == bytes32(0) || (kind == KeyKind.Signer && uint256(keyId) >> 160 != 0)) revert InvalidKeyId(keyId);
        if ((kind == KeyKind.Relayed) != (config.relayer != address(0))) revert InvalidRelayer(config.relayer);
        if ((config.window == 0) != (config.maxJobsPerWindow == 0)) {
            revert InvalidRateLimit(config.maxJobsPerWindow, config.window);
        }
        if (config.expiresAt != 0 && config.expiresAt <= block.timestamp) revert InvalidExpiry(config.expiresAt);
    }

    /// @dev The EIP-712 digest of `job` in this contract's domain.
    function _jobDigest(Job calldata job) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    JOB_TYPEHASH,
                    job.sponsor,
                    job.keyId,
                    job.consumer,
                    job.templateId,
                    keccak256(job.input),
                    job.callbackGas,
                    job.timeout,
                    job.nonce,
                    job.deadline
                )
            )
        );
    }
}
