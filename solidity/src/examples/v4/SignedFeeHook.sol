// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {BaseHook} from "@openzeppelin/uniswap-hooks/base/BaseHook.sol";
import {IPoolManager} from "@uniswap/v4-core/src/interfaces/IPoolManager.sol";
import {Hooks} from "@uniswap/v4-core/src/libraries/Hooks.sol";
import {LPFeeLibrary} from "@uniswap/v4-core/src/libraries/LPFeeLibrary.sol";
import {BeforeSwapDelta, BeforeSwapDeltaLibrary} from "@uniswap/v4-core/src/types/BeforeSwapDelta.sol";
import {PoolId, PoolIdLibrary} from "@uniswap/v4-core/src/types/PoolId.sol";
import {PoolKey} from "@uniswap/v4-core/src/types/PoolKey.sol";
import {SwapParams} from "@uniswap/v4-core/src/types/PoolOperation.sol";

import {QuoteVerifier} from "../../QuoteVerifier.sol";
import {IEnclaveRegistry} from "../../interfaces/IEnclaveRegistry.sol";
import {Quote, SignedQuote} from "../../libraries/QuoteLib.sol";

/// @notice A Uniswap v4 dynamic-fee hook whose LP fee for a swap comes from an enclave-signed quote the
/// swapper passes in `hookData` (sync mode): no request, no callback, the fee is known in `beforeSwap`.
/// @dev The quoted template is `v4-volatility` (input `(poolManager, poolId, samples, blocksBetween, minFee,
/// maxFee)`, output `(uint256 volatility, uint24 fee)`), and the hook fixes the whole input: a quote counts only
/// if its `inputHash` is that of `quoteInput(poolId)`, built from this pool's id and the owner's configuration,
/// so a quote for another pool, another PoolManager or a sampling window the swapper picked is refused
/// (`WrongInput`). The quote must also be anchored at most `maxAnchorAge` blocks ago (`StaleQuote`): the
/// volatility it reports is that of the recent past, and a swapper cannot keep a quote from a calm hour for a
/// volatile one. The rest is `QuoteVerifier`'s: this hook as consumer, this chain, deadline, output hash,
/// anchor block hash, an active enclave's signature, and each nonce used once. The quoted fee is clamped to
/// `[minFee, maxFee]` and returned with `LPFeeLibrary.OVERRIDE_FEE_FLAG`, so it applies to this swap only.
///
/// A swap with empty `hookData` pays `defaultFee`. Set it to `maxFee` to make quotes pay off for the swapper
/// only when they lower the fee: then no swapper pays less by leaving a quote out when the pool is volatile.
/// A quote is public once its swap is broadcast: someone else can use it first on this hook (the swap it was
/// fetched for then reverts `QuoteReplayed`), which costs the front-runner the quoted fee, never less.
/// Pools must be initialised with `LPFeeLibrary.DYNAMIC_FEE_FLAG` (the PoolManager ignores fee overrides
/// on static-fee pools, so their swaps revert `NotDynamicFee` here). The pool's stored LP fee stays 0: every
/// swap's fee is the override. The hook address must carry exactly the beforeSwap flag (mine a CREATE2 salt:
/// `coprocessor/v4.py`). Changing the configuration changes `quoteInput`, so outstanding quotes stop counting.
contract SignedFeeHook is BaseHook, QuoteVerifier, Ownable {
    using LPFeeLibrary for uint24;
    using PoolIdLibrary for PoolKey;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                       TYPES & STORAGE                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Which quotes the hook accepts and which fees it charges. One slot besides the template id.
    /// @param templateId The quoted template (`v4-volatility` or one with its input and output).
    /// @param minFee Least LP fee a quote sets, in hundredths of a bip; also the template's `minFee` input.
    /// @param maxFee Greatest LP fee a quote sets (at most 100%); also the template's `maxFee` input.
    /// @param defaultFee Fee of a swap without a quote, in `[minFee, maxFee]` (`maxFee` is the safe choice).
    /// @param samples Intervals the template samples (its `samples` input).
    /// @param blocksBetween Blocks per interval (its `blocksBetween` input).
    /// @param maxAnchorAge Most blocks between a quote's anchor and the swap's block, in `[1, 256]`.
    struct Config {
        bytes32 templateId;
        uint24 minFee;
        uint24 maxFee;
        uint24 defaultFee;
        uint16 samples;
        uint16 blocksBetween;
        uint32 maxAnchorAge;
    }

    /// @notice Current configuration.
    Config public config;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                       EVENTS & ERRORS                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Emitted when the configuration changes (also at deployment).
    event ConfigSet(Config config);
    /// @notice Emitted when a swap in `poolId` pays `fee` on the quote `nonce` signed by `signer`, which
    /// proposed `quotedFee` for a realised `volatility` (hundredths of a tick per interval).
    event FeeQuoted(
        PoolId indexed poolId, bytes32 indexed nonce, address signer, uint24 fee, uint24 quotedFee, uint256 volatility
    );

    /// @notice Thrown when a swap's pool was not initialised with `LPFeeLibrary.DYNAMIC_FEE_FLAG`.
    error NotDynamicFee();
    /// @notice Thrown when the fee bounds are not `minFee <= defaultFee <= maxFee <= 100%`.
    error InvalidFeeBounds(uint24 minFee, uint24 defaultFee, uint24 maxFee);
    /// @notice Thrown when the sampling window is empty (fewer than 2 samples or 0 blocks between them).
    error InvalidSampling(uint16 samples, uint16 blocksBetween);
    /// @notice Thrown when `maxAnchorAge` is not in `[1, 256]` (older block hashes cannot be checked).
    error InvalidAnchorAge(uint32 maxAnchorAge);
    /// @notice Thrown when the quote answers another template.
    error WrongTemplate(bytes32 templateId);
    /// @notice Thrown when the quote answers another input than `quoteInput` of the swap's pool.
    error WrongInput(bytes32 inputHash);
    /// @notice Thrown when the quote is not anchored, or anchored more than `maxAnchorAge` blocks ago.
    error StaleQuote(uint64 anchorBlock);

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         CONSTRUCTOR                        */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @param poolManager_ The PoolManager (also the template's `poolManager` input).
    /// @param registry_ The registry of attested enclaves (the Coprocessor's).
    /// @param coprocessor_ The Coprocessor whose EIP-712 domain quotes are signed in.
    /// @param config_ The initial configuration.
    /// @param owner_ Who may change the configuration.
    constructor(
        IPoolManager poolManager_,
        IEnclaveRegistry registry_,
        address coprocessor_,
        Config memory config_,
        address owner_
    ) BaseHook(poolManager_) QuoteVerifier(registry_, coprocessor_) Ownable(owner_) {
        _setConfig(config_);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            HOOKS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice beforeSwap only.
    function getHookPermissions() public pure override returns (Hooks.Permissions memory permissions) {
        permissions.beforeSwap = true;
    }

    /// @dev `hookData` is empty (the swap pays `defaultFee`) or `abi.encode(SignedQuote)` (it pays the quoted
    /// fee, clamped). Any invalid quote reverts the swap; the PoolManager wraps the error in `WrappedError`.
    function _beforeSwap(address, PoolKey calldata key, SwapParams calldata, bytes calldata hookData)
        internal
        override
        returns (bytes4, BeforeSwapDelta, uint24)
    {
        if (!key.fee.isDynamicFee()) revert NotDynamicFee();
        Config memory c = config;
        uint24 fee = hookData.length == 0 ? c.defaultFee : _quotedFee(key.toId(), c, hookData);
        return (this.beforeSwap.selector, BeforeSwapDeltaLibrary.ZERO_DELTA, fee | LPFeeLibrary.OVERRIDE_FEE_FLAG);
    }

    /// @dev Checks the quote in `hookData` for a swap in `poolId` under `c`, burns its nonce and returns its
    /// fee clamped to `[minFee, maxFee]`. Cheap checks first, the signature and the nonce's slot last.
    function _quotedFee(PoolId poolId, Config memory c, bytes calldata hookData) internal returns (uint24 fee) {
        SignedQuote memory sq = abi.decode(hookData, (SignedQuote));
        Quote memory q = sq.quote;
        if (q.templateId != c.templateId) revert WrongTemplate(q.templateId);
        if (q.inputHash != keccak256(_quoteInput(poolId, c))) revert WrongInput(q.inputHash);
        if (q.anchorHash == 0 || block.number > uint256(q.anchorBlock) + c.maxAnchorAge) {
            revert StaleQuote(q.anchorBlock);
        }
        _useQuote(sq);

        (uint256 volatility, uint24 quoted) = abi.decode(sq.output, (uint256, uint24));
        fee = quoted < c.minFee ? c.minFee : quoted > c.maxFee ? c.maxFee : quoted;
        emit FeeQuoted(poolId, q.nonce, sq.signer, fee, quoted, volatility);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            VIEWS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice The template input a quote for a swap in `poolId` must answer: `abi.encode(poolManager, poolId,
    /// samples, blocksBetween, minFee, maxFee)` under the current configuration. Ask the node's quote
    /// endpoint for `config.templateId` on it, with this hook as the consumer.
    function quoteInput(PoolId poolId) external view returns (bytes memory) {
        return _quoteInput(poolId, config);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            ADMIN                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Replaces the configuration. Quotes fetched under the old one no longer match `quoteInput`.
    function setConfig(Config calldata config_) external onlyOwner {
        _setConfig(config_);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          INTERNAL                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function _quoteInput(PoolId poolId, Config memory c) internal view returns (bytes memory) {
        return abi.encode(poolManager, poolId, c.samples, c.blocksBetween, c.minFee, c.maxFee);
    }

    function _setConfig(Config memory c) internal {
        if (c.minFee > c.defaultFee || c.defaultFee > c.maxFee || c.maxFee > LPFeeLibrary.MAX_LP_FEE) {
            revert InvalidFeeBounds(c.minFee, c.defaultFee, c.maxFee);
        }
        if (c.samples < 2 || c.blocksBetween == 0) revert InvalidSampling(c.samples, c.blocksBetween);
        if (c.maxAnchorAge == 0 || c.maxAnchorAge > 256) revert InvalidAnchorAge(c.maxAnchorAge);
        config = c;
        emit ConfigSet(c);
    }
}
