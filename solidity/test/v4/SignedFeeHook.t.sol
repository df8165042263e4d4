// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Vm} from "forge-std/Test.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {HookMiner} from "@uniswap/v4-periphery/src/utils/HookMiner.sol";
import {IHooks} from "@uniswap/v4-core/src/interfaces/IHooks.sol";
import {CustomRevert} from "@uniswap/v4-core/src/libraries/CustomRevert.sol";
import {Hooks} from "@uniswap/v4-core/src/libraries/Hooks.sol";
import {LPFeeLibrary} from "@uniswap/v4-core/src/libraries/LPFeeLibrary.sol";
import {PoolId, PoolIdLibrary} from "@uniswap/v4-core/src/types/PoolId.sol";
import {PoolKey} from "@uniswap/v4-core/src/types/PoolKey.sol";
import {SwapParams, ModifyLiquidityParams} from "@uniswap/v4-core/src/types/PoolOperation.sol";

import {SignedFeeHook} from "../../src/examples/v4/SignedFeeHook.sol";
import {IQuoteVerifier} from "../../src/interfaces/IQuoteVerifier.sol";
import {Quote, QuoteLib, SignedQuote} from "../../src/libraries/QuoteLib.sol";

import {V4TestBase, IPoolSwapTest} from "./V4TestBase.sol";

/// @notice Deploys SignedFeeHook at a flagged address on the real PoolManager with a dynamic-fee pool, and
/// plays the node's quote endpoint by signing v4-volatility quotes with the registered enclave's key.
abstract contract SignedFeeHookTestBase is V4TestBase {
    using PoolIdLibrary for PoolKey;

    uint160 internal constant FLAGS = uint160(Hooks.BEFORE_SWAP_FLAG);
    uint24 internal constant MIN_FEE = 500;
    uint24 internal constant MAX_FEE = 10_000;
    uint24 internal constant DEFAULT_FEE = MAX_FEE;
    uint16 internal constant SAMPLES = 8;
    uint16 internal constant BLOCKS_BETWEEN = 2;
    uint32 internal constant MAX_ANCHOR_AGE = 16;
    uint64 internal constant LIFETIME = 5 minutes;
    uint256 internal constant SWAP = 1e18;

    bytes32 internal constant SWAP_SIG = keccak256("Swap(bytes32,address,int128,int128,uint160,uint128,int24,uint24)");

    SignedFeeHook internal hook;
    PoolKey internal key;
    PoolId internal poolId;

    function setUp() public virtual override {
        super.setUp();
        hook = _deployHook(_config(TEMPLATE_ID));
        key = _initPool(IHooks(address(hook)), LPFeeLibrary.DYNAMIC_FEE_FLAG);
        poolId = key.toId();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function _config(bytes32 templateId) internal pure returns (SignedFeeHook.Config memory) {
        return SignedFeeHook.Config({
            templateId: templateId,
            minFee: MIN_FEE,
            maxFee: MAX_FEE,
            defaultFee: DEFAULT_FEE,
            samples: SAMPLES,
            blocksBetween: BLOCKS_BETWEEN,
            maxAnchorAge: MAX_ANCHOR_AGE
        });
    }

    /// @dev Deploys at an address whose low bits are exactly the hook's flags (etched, as v4's own tests do).
    function _deployHook(SignedFeeHook.Config memory config) internal returns (SignedFeeHook) {
        address at = address(FLAGS | (uint160(0x5555) << 144));
        deployCodeTo(
            "SignedFeeHook.sol:SignedFeeHook", abi.encode(manager, registry, address(coprocessor), config, owner), at
        );
        return SignedFeeHook(at);
    }

    /// @dev The v4-volatility input the hook wants answered for `id` (its own view must agree).
    function _input(PoolId id) internal view returns (bytes memory) {
        return abi.encode(manager, id, SAMPLES, BLOCKS_BETWEEN, MIN_FEE, MAX_FEE);
    }

    /// @dev A quote for `consumer_` of (volatility, fee) on `id`'s input, anchored to the previous block.
    function _quote(address consumer_, PoolId id, uint256 volatility, uint24 fee)
        internal
        view
        returns (Quote memory q, bytes memory output)
    {
        output = abi.encode(volatility, fee);
        q = Quote({
            templateId: TEMPLATE_ID,
            inputHash: keccak256(_input(id)),
            outputHash: keccak256(output),
            consumer: consumer_,
            chainId: block.chainid,
            deadline: uint64(block.timestamp) + LIFETIME,
            anchorBlock: uint64(block.number - 1),
            anchorHash: blockhash(block.number - 1),
            nonce: keccak256(abi.encode("nonce", consumer_, id, volatility, fee, block.number))
        });
    }

    /// @dev `q` with `output`, signed by `key_` in the Coprocessor's domain; the claimed signer is `key_`'s address.
    function _signed(Quote memory q, bytes memory output, uint256 key_) internal view returns (SignedQuote memory) {
        bytes32 digest = QuoteLib.digest(q, QuoteLib.domainSeparator(address(coprocessor)));
        return SignedQuote({quote: q, output: output, signer: vm.addr(key_), signature: _sign(key_, digest)});
    }

    /// @dev A valid signed quote of `fee` for the hook and the main pool.
    function _validQuote(uint24 fee) internal view returns (SignedQuote memory) {
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, fee);
        return _signed(q, output, enclaveKey);
    }

    /// @dev An exact-input zero-for-one swap of `SWAP` in `k` with `hookData`.
    function _swapWith(PoolKey memory k, bytes memory hookData) internal {
        _swapWith(k, true, hookData);
    }

    /// @dev An exact-input swap of `SWAP` in `k` with `hookData`.
    function _swapWith(PoolKey memory k, bool zeroForOne, bytes memory hookData) internal {
        SwapParams memory params = SwapParams(zeroForOne, -int256(SWAP), zeroForOne ? MIN_PRICE_LIMIT : MAX_PRICE_LIMIT);
        swapRouter.swap(k, params, IPoolSwapTest.TestSettings(false, false), hookData);
    }

    /// @dev Swaps in `k` with `hookData` and returns the LP fee of the PoolManager's Swap event.
    function _swapFee(PoolKey memory k, bytes memory hookData) internal returns (uint24 fee) {
        vm.recordLogs();
        _swapWith(k, hookData);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 found;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(manager) && logs[i].topics[0] == SWAP_SIG) {
                (,,,,, fee) = abi.decode(logs[i].data, (int128, int128, uint160, uint128, int24, uint24));
                ++found;
            }
        }
        assertEq(found, 1, "one Swap event");
    }

    /// @dev Expects the next swap to revert with the hook's `reason`, as the PoolManager wraps it.
    function _expectHookRevert(bytes memory reason) internal {
        vm.expectRevert(
            abi.encodeWithSelector(
                CustomRevert.WrappedError.selector,
                address(hook),
                IHooks.beforeSwap.selector,
                reason,
                abi.encodeWithSelector(Hooks.HookCallFailed.selector)
            )
        );
    }
}

contract SignedFeeHookTest is SignedFeeHookTestBase {
    using PoolIdLibrary for PoolKey;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                  PERMISSIONS & DEPLOYMENT                  */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_getHookPermissions_beforeSwapOnly() public view {
        Hooks.Permissions memory p = hook.getHookPermissions();
        assertTrue(p.beforeSwap);
        assertFalse(p.beforeInitialize || p.afterInitialize || p.afterSwap || p.beforeAddLiquidity);
        assertFalse(p.afterAddLiquidity || p.beforeRemoveLiquidity || p.afterRemoveLiquidity);
        assertFalse(p.beforeDonate || p.afterDonate || p.beforeSwapReturnDelta || p.afterSwapReturnDelta);
        assertFalse(p.afterAddLiquidityReturnDelta || p.afterRemoveLiquidityReturnDelta);
        assertEq(uint160(address(hook)) & Hooks.ALL_HOOK_MASK, FLAGS);
    }

    function test_constructor_minedSaltGivesFlaggedAddress() public {
        bytes memory args = abi.encode(manager, registry, address(coprocessor), _config(TEMPLATE_ID), owner);
        (address expected, bytes32 salt) = HookMiner.find(address(this), FLAGS, type(SignedFeeHook).creationCode, args);
        SignedFeeHook mined =
            new SignedFeeHook{salt: salt}(manager, registry, address(coprocessor), _config(TEMPLATE_ID), owner);
        assertEq(address(mined), expected);
        assertEq(address(mined.enclaveRegistry()), address(registry));
        assertEq(mined.coprocessor(), address(coprocessor));
        assertEq(mined.owner(), owner);
    }

    function test_quoteInput_isTheVolatilityInputOfThePool() public view {
        assertEq(hook.quoteInput(poolId), _input(poolId));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            FEES                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_beforeSwap_noQuote_paysDefaultFee() public {
        assertEq(_swapFee(key, ""), DEFAULT_FEE);
        assertEq(_lpFee(key), 0); // only overrides: the stored fee is never set
    }

    function test_beforeSwap_validQuote_paysQuotedFee() public {
        SignedQuote memory sq = _validQuote(3000);
        vm.expectEmit(address(hook));
        emit SignedFeeHook.FeeQuoted(poolId, sq.quote.nonce, enclave, 3000, 3000, 4321);
        assertEq(_swapFee(key, abi.encode(sq)), 3000);
        assertTrue(hook.quoteUsed(sq.quote.nonce));
        assertEq(_lpFee(key), 0);
        assertEq(_swapFee(key, ""), DEFAULT_FEE); // the override was for that swap only
    }

    function test_beforeSwap_quotedFeeAboveMax_paysMaxFee() public {
        SignedQuote memory sq = _validQuote(MAX_FEE + 1);
        vm.expectEmit(address(hook));
        emit SignedFeeHook.FeeQuoted(poolId, sq.quote.nonce, enclave, MAX_FEE, MAX_FEE + 1, 4321);
        assertEq(_swapFee(key, abi.encode(sq)), MAX_FEE);
    }

    function test_beforeSwap_quotedFeeBelowMin_paysMinFee() public {
        assertEq(_swapFee(key, abi.encode(_validQuote(0))), MIN_FEE);
    }

    function testFuzz_beforeSwap_paysQuotedFeeClamped(uint24 quoted) public {
        uint24 expected = quoted < MIN_FEE ? MIN_FEE : quoted > MAX_FEE ? MAX_FEE : quoted;
        assertEq(_swapFee(key, abi.encode(_validQuote(quoted))), expected);
    }

    function test_beforeSwap_anchorAtMaxAge_accepted() public {
        SignedQuote memory sq = _validQuote(2000);
        vm.roll(sq.quote.anchorBlock + MAX_ANCHOR_AGE);
        assertEq(_swapFee(key, abi.encode(sq)), 2000);
    }

    function test_beforeSwap_quoteAtExactDeadline_accepted() public {
        SignedQuote memory sq = _validQuote(2000);
        vm.warp(sq.quote.deadline);
        assertEq(_swapFee(key, abi.encode(sq)), 2000);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         REJECTIONS                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_beforeSwap_revertsWhen_forgedSignature() public {
        (, uint256 forgerKey) = makeAddrAndKey("forger");
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600);
        SignedQuote memory sq = _signed(q, output, forgerKey);
        sq.signer = enclave; // claims the registered enclave signed it
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.InvalidQuoteSignature.selector));
        _swapWith(key, abi.encode(sq));
    }

    function test_beforeSwap_revertsWhen_unregisteredSigner() public {
        (address rogue, uint256 rogueKey) = makeAddrAndKey("rogue enclave");
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600);
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.EnclaveNotActive.selector, rogue));
        _swapWith(key, abi.encode(_signed(q, output, rogueKey)));
    }

    function test_beforeSwap_revertsWhen_outputTampered() public {
        SignedQuote memory sq = _validQuote(MAX_FEE);
        sq.output = abi.encode(uint256(4321), MIN_FEE); // a cheaper fee than the enclave signed
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.OutputMismatch.selector));
        _swapWith(key, abi.encode(sq));
    }

    function test_beforeSwap_revertsWhen_signatureTampered() public {
        SignedQuote memory sq = _validQuote(MAX_FEE);
        sq.signature[7] ^= 0x01;
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.InvalidQuoteSignature.selector));
        _swapWith(key, abi.encode(sq));
    }

    function test_beforeSwap_revertsWhen_expired() public {
        SignedQuote memory sq = _validQuote(600);
        vm.warp(sq.quote.deadline + 1);
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.QuoteExpired.selector, sq.quote.deadline));
        _swapWith(key, abi.encode(sq));
    }

    function test_beforeSwap_revertsWhen_replayed() public {
        bytes memory hookData = abi.encode(_validQuote(600));
        _swapWith(key, hookData);
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.QuoteReplayed.selector, _validQuote(600).quote.nonce));
        _swapWith(key, hookData);
    }

    function test_beforeSwap_revertsWhen_quoteForAnotherHook() public {
        SignedFeeHook other = SignedFeeHook(address(FLAGS | (uint160(0x6666) << 144)));
        deployCodeTo(
            "SignedFeeHook.sol:SignedFeeHook",
            abi.encode(manager, registry, address(coprocessor), _config(TEMPLATE_ID), owner),
            address(other)
        );
        (Quote memory q, bytes memory output) = _quote(address(other), poolId, 4321, 600);
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.WrongConsumer.selector, address(other)));
        _swapWith(key, abi.encode(_signed(q, output, enclaveKey)));
    }

    function test_beforeSwap_revertsWhen_wrongChain() public {
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600);
        q.chainId = block.chainid + 1;
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.WrongChain.selector, block.chainid + 1));
        _swapWith(key, abi.encode(_signed(q, output, enclaveKey)));
    }

    function test_beforeSwap_revertsWhen_quoteForAnotherPool() public {
        PoolKey memory other = PoolKey(currency0, currency1, LPFeeLibrary.DYNAMIC_FEE_FLAG, 10, IHooks(address(hook)));
        manager.initialize(other, SQRT_PRICE_1_1);
        liquidityRouter.modifyLiquidity(other, ModifyLiquidityParams(-6000, 6000, LIQUIDITY, 0), "");
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600); // quoted for `key`
        _expectHookRevert(abi.encodeWithSelector(SignedFeeHook.WrongInput.selector, q.inputHash));
        _swapWith(other, abi.encode(_signed(q, output, enclaveKey)));
        assertEq(_swapFee(key, abi.encode(_signed(q, output, enclaveKey))), 600); // its own pool takes it
    }

    function test_beforeSwap_revertsWhen_wrongTemplate() public {
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600);
        q.templateId = PAID_TEMPLATE_ID;
        _expectHookRevert(abi.encodeWithSelector(SignedFeeHook.WrongTemplate.selector, PAID_TEMPLATE_ID));
        _swapWith(key, abi.encode(_signed(q, output, enclaveKey)));
    }

    function test_beforeSwap_revertsWhen_samplingWindowOfTheSwappersChoosing() public {
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600);
        q.inputHash = keccak256(abi.encode(manager, poolId, uint16(2), uint16(1), MIN_FEE, MAX_FEE));
        _expectHookRevert(abi.encodeWithSelector(SignedFeeHook.WrongInput.selector, q.inputHash));
        _swapWith(key, abi.encode(_signed(q, output, enclaveKey)));
    }

    function test_beforeSwap_revertsWhen_anchorTooOld() public {
        SignedQuote memory sq = _validQuote(600);
        vm.roll(sq.quote.anchorBlock + MAX_ANCHOR_AGE + 1);
        _expectHookRevert(abi.encodeWithSelector(SignedFeeHook.StaleQuote.selector, sq.quote.anchorBlock));
        _swapWith(key, abi.encode(sq));
    }

    function test_beforeSwap_revertsWhen_notAnchored() public {
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600);
        (q.anchorBlock, q.anchorHash) = (0, bytes32(0));
        _expectHookRevert(abi.encodeWithSelector(SignedFeeHook.StaleQuote.selector, 0));
        _swapWith(key, abi.encode(_signed(q, output, enclaveKey)));
    }

    function test_beforeSwap_revertsWhen_anchorNotOfThisChain() public {
        (Quote memory q, bytes memory output) = _quote(address(hook), poolId, 4321, 600);
        q.anchorHash = keccak256("a block of another chain");
        _expectHookRevert(abi.encodeWithSelector(IQuoteVerifier.AnchorMismatch.selector, q.anchorBlock));
        _swapWith(key, abi.encode(_signed(q, output, enclaveKey)));
    }

    function test_beforeSwap_revertsWhen_configChangedSinceQuote() public {
        SignedQuote memory sq = _validQuote(600);
        SignedFeeHook.Config memory c = _config(TEMPLATE_ID);
        c.maxFee = 20_000;
        vm.prank(owner);
        hook.setConfig(c);
        _expectHookRevert(abi.encodeWithSelector(SignedFeeHook.WrongInput.selector, sq.quote.inputHash));
        _swapWith(key, abi.encode(sq));
    }

    function test_beforeSwap_revertsWhen_staticFeePool() public {
        PoolKey memory staticKey = PoolKey(currency0, currency1, 3000, TICK_SPACING, IHooks(address(hook)));
        manager.initialize(staticKey, SQRT_PRICE_1_1);
        liquidityRouter.modifyLiquidity(staticKey, ModifyLiquidityParams(-6000, 6000, LIQUIDITY, 0), "");
        _expectHookRevert(abi.encodeWithSelector(SignedFeeHook.NotDynamicFee.selector));
        _swapWith(staticKey, "");
    }

    function test_beforeSwap_revertsWhen_malformedHookData() public {
        vm.expectRevert(); // abi.decode fails inside the hook, wrapped by the PoolManager
        _swapWith(key, hex"1234");
    }

    function test_beforeSwap_calledDirectly_reverts() public {
        vm.expectRevert(); // onlyPoolManager
        hook.beforeSwap(address(this), key, SwapParams(true, -1, MIN_PRICE_LIMIT), "");
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            ADMIN                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_setConfig_onlyOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        hook.setConfig(_config(PAID_TEMPLATE_ID));
    }

    function test_setConfig_setsAndEmits() public {
        SignedFeeHook.Config memory c = _config(PAID_TEMPLATE_ID);
        c.defaultFee = MIN_FEE;
        vm.expectEmit(address(hook));
        emit SignedFeeHook.ConfigSet(c);
        vm.prank(owner);
        hook.setConfig(c);
        (bytes32 templateId,,, uint24 defaultFee,,,) = hook.config();
        assertEq(templateId, PAID_TEMPLATE_ID);
        assertEq(defaultFee, MIN_FEE);
        assertEq(_swapFee(key, ""), MIN_FEE);
    }

    function test_setConfig_revertsWhen_feeBoundsInvalid() public {
        SignedFeeHook.Config memory c = _config(TEMPLATE_ID);
        c.defaultFee = MAX_FEE + 1;
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(SignedFeeHook.InvalidFeeBounds.selector, MIN_FEE, MAX_FEE + 1, MAX_FEE));
        hook.setConfig(c);
        c.defaultFee = MIN_FEE - 1;
        vm.expectRevert(abi.encodeWithSelector(SignedFeeHook.InvalidFeeBounds.selector, MIN_FEE, MIN_FEE - 1, MAX_FEE));
        hook.setConfig(c);
        (c.defaultFee, c.maxFee) = (MAX_FEE, uint24(LPFeeLibrary.MAX_LP_FEE) + 1);
        vm.expectRevert(abi.encodeWithSelector(SignedFeeHook.InvalidFeeBounds.selector, MIN_FEE, MAX_FEE, c.maxFee));
        hook.setConfig(c);
        vm.stopPrank();
    }

    function test_setConfig_revertsWhen_samplingOrAnchorAgeInvalid() public {
        SignedFeeHook.Config memory c = _config(TEMPLATE_ID);
        c.samples = 1;
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(SignedFeeHook.InvalidSampling.selector, 1, BLOCKS_BETWEEN));
        hook.setConfig(c);
        (c.samples, c.blocksBetween) = (SAMPLES, 0);
        vm.expectRevert(abi.encodeWithSelector(SignedFeeHook.InvalidSampling.selector, SAMPLES, 0));
        hook.setConfig(c);
        (c.blocksBetween, c.maxAnchorAge) = (BLOCKS_BETWEEN, 0);
        vm.expectRevert(abi.encodeWithSelector(SignedFeeHook.InvalidAnchorAge.selector, 0));
        hook.setConfig(c);
        c.maxAnchorAge = 257;
        vm.expectRevert(abi.encodeWithSelector(SignedFeeHook.InvalidAnchorAge.selector, 257));
        hook.setConfig(c);
        vm.stopPrank();
    }
}

/// @notice Gas of a swap on a plain pool (static 0.30% fee, no hook) and on the hook's pool without and with
/// a quote in `hookData`. Both pools are initialised, funded and swapped once in `setUp`, which runs as its
/// own transaction, so each measured call starts cold as on chain; the quote is signed there too. Figures
/// are the router call's frame gas (no 21k intrinsic, no calldata).
contract SignedFeeHookGasTest is SignedFeeHookTestBase {
    PoolKey internal plain;
    bytes internal quoteData;

    function setUp() public override {
        super.setUp();
        plain = _initPool(IHooks(address(0)), 3000);
        _swapWith(plain, "");
        _swapWith(key, "");
        quoteData = abi.encode(_validQuote(3000));
    }

    function test_swap_plainPool_gas() public {
        _swapWith(plain, false, "");
        vm.snapshotGasLastCall("SignedFeeHook", "swap, plain pool (no hook)");
    }

    function test_swap_hookPool_noQuote_gas() public {
        _swapWith(key, false, "");
        vm.snapshotGasLastCall("SignedFeeHook", "swap, hook pool, no quote (default fee)");
    }

    function test_swap_hookPool_withQuote_gas() public {
        _swapWith(key, false, quoteData);
        vm.snapshotGasLastCall("SignedFeeHook", "swap, hook pool, signed quote (verify + burn nonce + override)");
    }
}
