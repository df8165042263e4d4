// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITemplateRegistry} from "./ITemplateRegistry.sol";
import {Request} from "../libraries/RequestLib.sol";

/// @notice Sponsor balances with per-key limits: a sponsor deposits ether and authorises keys, each with its own
/// limits, under which jobs (a template, an input, a consumer) are paid from the sponsor's balance. Built for jobs
/// that arrive over HTTP: a node submits them, and can spend no more of a sponsor's money than its keys allow.
/// @dev Note: each job is an ordinary Coprocessor request made by this contract (the `consumer` of every request is
/// this contract) with the job's template and input as given; its result is forwarded to the job's consumer
/// (`ISponsoredConsumer.onSponsoredJob`). Two kinds of key:
/// - `Signer`: the key id is the signer's address, `bytes32(uint256(uint160(signer)))`, and each job carries the
///   signer's EIP-712 signature of the `Job` in this contract's domain (name "Sponsorships", version "1"). Anyone
///   may relay it; no one can change what it says.
/// - `Relayed` (an API key): the key id is opaque (e.g. `keccak256` of the API key's public id, never its secret),
///   and only the key's `relayer` (the node's account, which checks the API key off-chain) may submit jobs under it,
///   without a signature. The relayer chooses each job's contents, within the key's limits.
/// Every job needs, under its key: the key set and not expired, a deadline not passed, a nonce never used before
/// for that (sponsor, key), the consumer and template the key allows, the Coprocessor's fee for the template at
/// most the key's `maxFeePerJob`, its remaining `allowance` and the sponsor's balance, and room in the key's rate
/// window. The fee is then debited from the balance and the allowance.
interface ISponsorships {
    /// @notice How a key's jobs are authorised. `None` marks a key that is not set (never, or revoked).
    enum KeyKind {
        None,
        Signer,
        Relayed
    }

    /// @notice A key's terms, as given to `setKey` and returned by `keyOf`.
    /// @dev Note: stored in three slots, read by every job (one of them written), and a fourth for `templateId`, used
    /// only when it is not zero; the key id's first `setKey` also writes a two-slot back-reference, once for good.
    /// @param kind `Signer` or `Relayed`
    /// @param relayer The only account that may submit the key's jobs: `Relayed` keys only, zero for `Signer` keys
    /// @param consumer The only consumer the key's jobs may name; zero allows any
    /// @param templateId The only template the key's jobs may run; zero allows any
    /// @param maxFeePerJob The largest Coprocessor fee one job may cost, in wei
    /// @param allowance What the key may still spend, in wei: each job's fee is taken from it, refunds go back to it
    /// @param maxJobsPerWindow How many jobs the key may submit per rate window; zero if and only if `window` is zero
    /// @param window The length of a rate window, in seconds; zero means no rate limit. Windows are fixed: window k
    /// covers Unix times [k * window, (k + 1) * window)
    /// @param expiresAt The Unix time, in seconds, from which the key's jobs are refused; zero means never
    struct KeyConfig {
        KeyKind kind;
        address relayer;
        address consumer;
        bytes32 templateId;
        uint96 maxFeePerJob;
        uint96 allowance;
        uint16 maxJobsPerWindow;
        uint32 window;
        uint40 expiresAt;
    }

    /// @notice A job, as signed by a `Signer` key (EIP-712 type `Job`, `input` hashed with keccak256) or submitted by
    /// a `Relayed` key's relayer.
    /// @param sponsor The account whose balance pays for the job
    /// @param keyId The sponsor's key the job is submitted under
    /// @param consumer The contract the result is delivered to (`ISponsoredConsumer`)
    /// @param templateId The content hash of the template bundle to run
    /// @param input The template's ABI-encoded inputs, passed to the Coprocessor request as they are
    /// @param callbackGas The exact gas given to the consumer's `onSponsoredJob`
    /// @param timeout The request's timeout, in seconds: after it the job can be reclaimed
    /// @param nonce Any number not used before for this (sponsor, key); nonces are unordered, and 256 consecutive
    /// ones share a storage word, so a counter is the cheapest choice
    /// @param deadline The last Unix time, in seconds, at which the job may be submitted
    struct Job {
        address sponsor;
        bytes32 keyId;
        address consumer;
        bytes32 templateId;
        bytes input;
        uint32 callbackGas;
        uint64 timeout;
        uint256 nonce;
        uint64 deadline;
    }

    /// @notice Thrown when `setKey` is given the kind `None` (use `revokeKey`).
    error InvalidKeyKind();
    /// @notice Thrown when a key id is zero, or a `Signer` key's id is not an address (its upper 96 bits not zero).
    error InvalidKeyId(bytes32 keyId);
    /// @notice Thrown when a `Relayed` key has no relayer, or a `Signer` key has one.
    error InvalidRelayer(address relayer);
    /// @notice Thrown when exactly one of `window` and `maxJobsPerWindow` is zero.
    error InvalidRateLimit(uint16 maxJobsPerWindow, uint32 window);
    /// @notice Thrown when a key's `expiresAt` is not zero and not in the future.
    error InvalidExpiry(uint40 expiresAt);
    /// @notice Thrown when the sponsor has not set this key, or revoked it.
    error UnknownKey(address sponsor, bytes32 keyId);
    /// @notice Thrown when submitting under a key at or after its `expiresAt`.
    error KeyExpired(address sponsor, bytes32 keyId, uint40 expiresAt);
    /// @notice Thrown when anyone but a `Relayed` key's relayer submits under it.
    error NotRelayer(address caller, address relayer);
    /// @notice Thrown when a `Signer` key's job is not signed by the key's address (or the signature is malformed).
    error InvalidJobSignature();
    /// @notice Thrown when submitting a job after its deadline.
    error JobDeadlinePassed(uint64 deadline);
    /// @notice Thrown when the job's nonce was used before under this (sponsor, key).
    error NonceAlreadyUsed(address sponsor, bytes32 keyId, uint256 nonce);
    /// @notice Thrown when a job names the zero address as its consumer.
    error InvalidConsumer();
    /// @notice Thrown when the key allows only another consumer.
    error ConsumerNotAllowed(address consumer, address allowed);
    /// @notice Thrown when the key allows only another template.
    error TemplateNotAllowed(bytes32 templateId, bytes32 allowed);
    /// @notice Thrown when `callbackGas` is zero, or too large for the request's gas (it and `CALLBACK_OVERHEAD`) to
    /// fit in a uint32.
    error InvalidCallbackGas(uint32 callbackGas);
    /// @notice Thrown when the Coprocessor's fee for the template exceeds the key's `maxFeePerJob`.
    error FeeAboveKeyLimit(uint256 fee, uint96 maxFeePerJob);
    /// @notice Thrown when the fee exceeds what the key may still spend.
    error AllowanceExceeded(uint256 fee, uint96 allowance);
    /// @notice Thrown when the sponsor's free balance cannot pay a job's fee or a withdrawal.
    error InsufficientBalance(uint256 balance, uint256 amount);
    /// @notice Thrown when the key's rate window is full.
    /// @param nextWindowAt The Unix time, in seconds, the next window opens
    error RateLimited(uint256 nextWindowAt);
    /// @notice Thrown when reclaiming a request that is not an unsettled job of this contract.
    error UnknownJob(bytes32 requestId);
    /// @notice Thrown when reclaiming a job the Coprocessor settled.
    error JobNotCancellable(bytes32 requestId);
    /// @notice Thrown when sending ether to a sponsor fails.
    error TransferFailed();

    /// @notice Emitted when ether is added to a sponsor's balance.
    /// @param sponsor The account credited (the sender)
    /// @param amount The ether added, in wei
    /// @param balance The sponsor's free balance after it, in wei
    event Deposited(address indexed sponsor, uint256 amount, uint256 balance);
    /// @notice Emitted when a sponsor takes ether out of its free balance.
    /// @param sponsor The account debited
    /// @param to The address the ether was sent to
    /// @param amount The amount sent, in wei
    event Withdrawn(address indexed sponsor, address indexed to, uint256 amount);
    /// @notice Emitted when a sponsor sets (or replaces) a key.
    /// @param sponsor The key's sponsor
    /// @param keyId The key's id
    /// @param config The key's terms, as given
    event KeySet(address indexed sponsor, bytes32 indexed keyId, KeyConfig config);
    /// @notice Emitted when a sponsor revokes a key; its jobs in flight still settle.
    /// @param sponsor The key's sponsor
    /// @param keyId The key's id
    event KeyRevoked(address indexed sponsor, bytes32 indexed keyId);
    /// @notice Emitted when a job is paid for and sent to the Coprocessor.
    /// @param requestId The Coprocessor request carrying the job
    /// @param sponsor The account whose balance paid
    /// @param keyId The key the job was submitted under
    /// @param consumer The contract the result goes to
    /// @param templateId The template the job runs
    /// @param nonce The job's nonce, now used
    /// @param fee The request fee taken from the balance and the key's allowance, in wei
    event JobSubmitted(
        bytes32 indexed requestId,
        address indexed sponsor,
        bytes32 indexed keyId,
        address consumer,
        bytes32 templateId,
        uint256 nonce,
        uint96 fee
    );
    /// @notice Emitted when a job's response is settled and forwarded to its consumer.
    /// @param requestId The Coprocessor request carrying the job
    /// @param status The response's `Status` value: 0 is Ok, anything else is an error
    /// @param consumerSucceeded Whether `onSponsoredJob` returned without reverting (false as well if the output
    /// exceeded `MAX_OUTPUT_BYTES` and was not forwarded)
    event JobSettled(bytes32 indexed requestId, uint8 status, bool consumerSucceeded);
    /// @notice Emitted when the Coprocessor's refund of a job is credited back to its sponsor's balance (and to its
    /// key's allowance if the key is still set): the whole fee of an expired job, or the author fee of a job
    /// answered with an error status.
    /// @param requestId The Coprocessor request carrying the job
    /// @param sponsor The sponsor credited
    /// @param keyId The key the job was submitted under
    /// @param amount The refund, in wei
    event JobRefunded(bytes32 indexed requestId, address indexed sponsor, bytes32 indexed keyId, uint96 amount);

    /// @notice Adds `msg.value` to the sender's free balance.
    function deposit() external payable;

    /// @notice Sends `amount` of the sender's free balance to `to`. The fees of jobs in flight are not part of it:
    /// they come back only as refunds.
    /// @param amount The amount to send, in wei, at most `balanceOf(msg.sender)`
    /// @param to The address that receives it
    function withdraw(uint256 amount, address payable to) external;

    /// @notice Sets the sender's key `keyId`, or replaces its terms. Takes effect for the next job.
    /// @dev Note: replacing a key's terms sets its allowance anew; refunds of its jobs still in flight come back to
    /// it when they arrive, so the allowance bounds what the key spends net of refunds. The rate window's count is
    /// kept when `window` is unchanged (topping up does not reset the rate limit), reset otherwise. Nonces used
    /// under the key stay used, through revocation and re-setting.
    /// @param keyId `bytes32(uint256(uint160(signer)))` for a `Signer` key; any non-zero id for a `Relayed` key
    /// @param config The key's terms (see `KeyConfig`)
    function setKey(bytes32 keyId, KeyConfig calldata config) external;

    /// @notice Revokes the sender's key `keyId`: no job is accepted under it until it is set again. Jobs in flight
    /// settle normally, and their refunds go to the balance only.
    /// @param keyId The key's id
    function revokeKey(bytes32 keyId) external;

    /// @notice Pays for `job` from its sponsor's balance under the key `job.keyId`, and sends its Coprocessor
    /// request. The result is forwarded to `job.consumer` when the request settles.
    /// @dev The request asks for `callbackGas + callbackGas / 64 + CALLBACK_OVERHEAD` callback gas (this contract's
    /// share of the callback). Reverts with the first limit the job breaks (see the errors), or with the
    /// Coprocessor's refusal (an unknown or deprecated template, a timeout, input or callback gas over its limits).
    /// @param job The job; for a `Signer` key, exactly as signed
    /// @param signature For a `Signer` key, the key's 65-byte signature of `jobDigest(job)`; ignored for a `Relayed`
    /// key (pass empty bytes)
    /// @return requestId The Coprocessor request carrying the job
    function submit(Job calldata job, bytes calldata signature) external returns (bytes32 requestId);

    /// @notice Credits the fee of an expired job back to its sponsor's balance (and its key's allowance, if the key
    /// is still set), cancelling its request at the Coprocessor first unless someone already did. Anyone may call.
    /// @param request The job's request, field for field as in `ICoprocessor.RequestSubmitted` (only `requestId` is
    /// read if the request is already cancelled)
    function reclaim(Request calldata request) external;

    /// @notice A sponsor's free balance: what its jobs may spend and it may withdraw.
    /// @param sponsor The sponsor
    /// @return The balance, in wei
    function balanceOf(address sponsor) external view returns (uint256);

    /// @notice A sponsor's key, with its use of the current rate window.
    /// @param sponsor The key's sponsor
    /// @param keyId The key's id
    /// @return config The key's terms, `allowance` as it stands now (all zero if the key is not set)
    /// @return jobsInWindow The jobs submitted under the key in the current rate window
    function keyOf(address sponsor, bytes32 keyId) external view returns (KeyConfig memory config, uint16 jobsInWindow);

    /// @notice The job a Coprocessor request carries, while it is unsettled.
    /// @param requestId The Coprocessor request's id
    /// @return sponsor The sponsor that paid (zero if the request is not an unsettled job)
    /// @return keyId The key the job was submitted under
    /// @return consumer The contract the result goes to
    /// @return callbackGas The exact gas given to the consumer
    /// @return fee The fee paid for the request, in wei
    function jobOf(bytes32 requestId)
        external
        view
        returns (address sponsor, bytes32 keyId, address consumer, uint32 callbackGas, uint96 fee);

    /// @notice The EIP-712 digest a `Signer` key signs for `job`: `keccak256("\x19\x01" ‖ domainSeparator ‖
    /// hashStruct(job))`, the domain being name "Sponsorships", version "1", this chain and this contract.
    /// @param job The job
    /// @return The digest to sign (eth_signTypedData_v4, or eth-account's `encode_typed_data`; not personal_sign)
    function jobDigest(Job calldata job) external view returns (bytes32);

    /// @notice Whether `nonce` was used by a job under (sponsor, key).
    /// @param sponsor The sponsor
    /// @param keyId The key's id
    /// @param nonce The nonce
    /// @return True once a job with this nonce was submitted
    function nonceUsed(address sponsor, bytes32 keyId, uint256 nonce) external view returns (bool);

    /// @notice The EIP-712 domain separator of this deployment.
    /// @return The separator of the domain (name "Sponsorships", version "1", this chain, this contract)
    function domainSeparator() external view returns (bytes32);

    /// @notice The catalogue the Coprocessor reads author fees from (the Coprocessor's own, read at deployment): the
    /// refund of a job answered with an error status is its template's author fee.
    /// @return The TemplateRegistry's address
    function templateRegistry() external view returns (ITemplateRegistry);

    /// @notice The EIP-712 type hash of `Job`.
    /// @return keccak256 of the `Job` type string
    function JOB_TYPEHASH() external view returns (bytes32);

    /// @notice Gas this contract keeps for itself out of each request's callback gas, on top of `callbackGas / 64`.
    /// @return The gas added to the job's `callbackGas` in its request
    function CALLBACK_OVERHEAD() external view returns (uint32);

    /// @notice The largest output forwarded to a consumer; a larger one settles the job without calling it.
    /// @return The cap, in bytes (the Coprocessor's default output cap)
    function MAX_OUTPUT_BYTES() external view returns (uint256);
}
