// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Vm} from "forge-std/Test.sol";
import {HookMiner} from "@uniswap/v4-periphery/src/utils/HookMiner.sol";
import {IHooks} from "@uniswap/v4-core/src/interfaces/IHooks.sol";
import {IPoolManager} from "@uniswap/v4-core/src/interfaces/IPoolManager.sol";
import {Hooks} from "@uniswap/v4-core/src/libraries/Hooks.sol";
import {CustomRevert} from "@uniswap/v4-core/src/libraries/CustomRevert.sol";
import {LPFeeLibrary} from "@uniswap/v4-core/src/libraries/LPFeeLibrary.sol";
import {PoolId, PoolIdLibrary} from "@uniswap/v4-core/src/types/PoolId.sol";
import {PoolKey} from "@uniswap/v4-core/src/types/PoolKey.sol";
import {BalanceDelta} from "@uniswap/v4-core/src/types/BalanceDelta.sol";
import {SwapParams, ModifyLiquidityParams} from "@uniswap/v4-core/src/types/PoolOperation.sol";

import {CoprocessorClient} from "../../src/CoprocessorClient.sol";
import {ICoprocessor} from "../../src/interfaces/ICoprocessor.sol";
import {Request, Fulfillment} from "../../src/libraries/RequestLib.sol";
import {CoprocessorFeeHook} from "../../src/examples/v4/CoprocessorFeeHook.sol";

import {V4TestBase} from "./V4TestBase.sol";

/// @notice Deploys CoprocessorFeeHook at a flagged address on the real PoolManager with a dynamic-fee
/// pool, and plays the node's part by fulfilling its requests with enclave-signed responses.
abstract contract FeeHookTestBase is V4TestBase {
    using PoolIdLibrary for PoolKey;

    uint160 internal constant FLAGS = uint160(Hooks.AFTER_INITIALIZE_FLAG | Hooks.AFTER_SWAP_FLAG);
    uint24 internal constant MIN_FEE = 500;
    uint24 internal constant MAX_FEE = 10_000;
    uint32 internal constant MIN_INTERVAL = 5;
    uint64 internal constant HOOK_TIMEOUT = 10 minutes;
    uint256 internal constant SWAP = 1e18;

    CoprocessorFeeHook internal hook;
    PoolKey internal key;
    PoolId internal poolId;

    function setUp() public virtual override {
        super.setUp();
        hook = _deployHook(_config(TEMPLATE_ID));
        vm.deal(address(hook), 1 ether);
        vm.prank(owner); // only the owner may initialise pools with the hook (it pays their requests)
        key = _initPool(IHooks(address(hook)), LPFeeLibrary.DYNAMIC_FEE_FLAG);
        poolId = key.toId();
    }

    function _config(bytes32 templateId) internal pure returns (CoprocessorFeeHook.Config memory) {
        return CoprocessorFeeHook.Config({
            templateId: templateId,
            minFee: MIN_FEE,
            maxFee: MAX_FEE,
            samples: 8,
            blocksBetween: 2,
            minInterval: MIN_INTERVAL,
            callbackGasLimit: 100_000,
            timeout: HOOK_TIMEOUT
        });
    }

    /// @dev Deploys at an address whose low bits are exactly the hook's flags (etched, as v4's own tests do).
    function _deployHook(CoprocessorFeeHook.Config memory config) internal returns (CoprocessorFeeHook) {
        address at = address(FLAGS | (uint160(0x4444) << 144));
        deployCodeTo("CoprocessorFeeHook.sol:CoprocessorFeeHook", abi.encode(manager, coprocessor, config, owner), at);
        return CoprocessorFeeHook(payable(at));
    }

    /// @dev Swaps and returns the request the hook sent, if any (requestId 0 when none).
    function _swapAndCapture(bool zeroForOne) internal returns (Request memory r) {
        vm.recordLogs();
        _swap(key, zeroForOne, SWAP);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(coprocessor) && logs[i].topics[0] == REQUEST_SUBMITTED_SIG) {
                return _requestFromLogs(logs);
            }
        }
    }

    /// @dev Fulfils `r` as the registered enclave with (volatility, fee).
    function _answer(Request memory r, uint256 volatility, uint24 fee) internal {
        coprocessor.fulfill(_batch(_fulfillment(r, abi.encode(volatility, fee))));
    }

    function _pending() internal view returns (bytes32 pending) {
        (pending,,) = hook.poolStates(poolId);
    }

    /// @dev The Coprocessor's callback outcome of `r` from the last fulfil's logs.
    function _callbackSucceeded(Vm.Log[] memory logs) internal pure returns (bool ok) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == REQUEST_FULFILLED_SIG) (, ok) = abi.decode(logs[i].data, (uint8, bool));
        }
    }
}

contract CoprocessorFeeHookTest is FeeHookTestBase {
    using PoolIdLibrary for PoolKey;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                  PERMISSIONS & DEPLOYMENT                  */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_getHookPermissions_afterInitializeAndAfterSwapOnly() public view {
        Hooks.Permissions memory p = hook.getHookPermissions();
        assertTrue(p.afterInitialize);
        assertTrue(p.afterSwap);
        assertFalse(p.beforeInitialize || p.beforeSwap || p.beforeAddLiquidity || p.afterAddLiquidity);
        assertFalse(p.beforeRemoveLiquidity || p.afterRemoveLiquidity || p.beforeDonate || p.afterDonate);
        assertFalse(p.beforeSwapReturnDelta || p.afterSwapReturnDelta);
        assertFalse(p.afterAddLiquidityReturnDelta || p.afterRemoveLiquidityReturnDelta);
        assertEq(uint160(address(hook)) & Hooks.ALL_HOOK_MASK, FLAGS);
    }

    function test_constructor_minedSaltGivesFlaggedAddress() public {
        bytes memory args = abi.encode(manager, coprocessor, _config(TEMPLATE_ID), owner);
        (address expected, bytes32 salt) =
            HookMiner.find(address(this), FLAGS, type(CoprocessorFeeHook).creationCode, args);
        CoprocessorFeeHook mined = new CoprocessorFeeHook{salt: salt}(manager, coprocessor, _config(TEMPLATE_ID), owner);
        assertEq(address(mined), expected);
        assertEq(uint160(address(mined)) & Hooks.ALL_HOOK_MASK, FLAGS);
    }

    function test_constructor_unflaggedAddress_reverts() public {
        CoprocessorFeeHook.Config memory c = _config(TEMPLATE_ID);
        bytes memory initCode =
            abi.encodePacked(type(CoprocessorFeeHook).creationCode, abi.encode(manager, coprocessor, c, owner));
        bytes32 salt;
        address at = vm.computeCreate2Address(salt, keccak256(initCode), address(this));
        while (uint160(at) & Hooks.ALL_HOOK_MASK == FLAGS) {
            salt = bytes32(uint256(salt) + 1);
            at = vm.computeCreate2Address(salt, keccak256(initCode), address(this));
        }
        vm.expectRevert(abi.encodeWithSelector(Hooks.HookAddressNotValid.selector, at));
        new CoprocessorFeeHook{salt: salt}(manager, coprocessor, c, owner);
    }

    function test_afterInitialize_staticFeePool_reverts() public {
        PoolKey memory staticKey = PoolKey(currency0, currency1, 3000, TICK_SPACING, IHooks(address(hook)));
        vm.expectRevert(); // NotDynamicFee, wrapped by the PoolManager's HookCallFailed
        vm.prank(owner);
        manager.initialize(staticKey, SQRT_PRICE_1_1);
    }

    function test_afterInitialize_notOwner_reverts() public {
        PoolKey memory other = PoolKey(currency0, currency1, LPFeeLibrary.DYNAMIC_FEE_FLAG, 10, IHooks(address(hook)));
        vm.expectRevert(
            abi.encodeWithSelector(
                CustomRevert.WrappedError.selector,
                address(hook),
                IHooks.afterInitialize.selector,
                abi.encodeWithSelector(CoprocessorFeeHook.PoolNotAllowed.selector, address(this)),
                abi.encodeWithSelector(Hooks.HookCallFailed.selector)
            )
        );
        manager.initialize(other, SQRT_PRICE_1_1);
    }

    function test_afterInitialize_dynamicPool_startsAtMinFee() public view {
        assertEq(_lpFee(key), MIN_FEE);
        (,, uint24 fee,,) = hook.poolKeys(poolId);
        assertEq(fee, LPFeeLibrary.DYNAMIC_FEE_FLAG);
    }

    function test_afterSwap_calledDirectly_reverts() public {
        vm.expectRevert(); // onlyPoolManager
        hook.afterSwap(address(this), key, _params(), _zeroDelta(), "");
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          REQUESTS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_afterSwap_firstSwap_requestsVolatilityTemplate() public {
        uint256 balance = address(hook).balance;
        vm.expectEmit(true, false, false, false, address(hook));
        emit CoprocessorFeeHook.FeeRequested(poolId, bytes32(0), 0);
        Request memory r = _swapAndCapture(true);
        assertEq(r.consumer, address(hook));
        assertEq(r.templateId, TEMPLATE_ID);
        assertEq(r.inputHash, keccak256(abi.encode(manager, poolId, uint16(8), uint16(2), MIN_FEE, MAX_FEE)));
        assertEq(r.callbackGasLimit, 100_000);
        assertEq(_pending(), r.requestId);
        assertEq(address(hook).balance, balance); // TEMPLATE_ID is free
    }

    function test_afterSwap_paidTemplate_paysRequestFeeFromBalance() public {
        vm.prank(owner);
        hook.setConfig(_config(PAID_TEMPLATE_ID));
        Request memory r = _swapAndCapture(true);
        assertEq(r.fee, AUTHOR_FEE);
        assertEq(address(hook).balance, 1 ether - AUTHOR_FEE);
    }

    function test_afterSwap_requestInFlight_sendsNoSecondRequest() public {
        Request memory first = _swapAndCapture(true);
        vm.roll(block.number + 100);
        Request memory second = _swapAndCapture(false);
        assertEq(second.requestId, bytes32(0));
        assertEq(_pending(), first.requestId);
        assertEq(coprocessor.nonce(), 1);
    }

    function test_afterSwap_beforeMinInterval_sendsNoRequest() public {
        _answer(_swapAndCapture(true), 0, MIN_FEE);
        vm.roll(block.number + MIN_INTERVAL - 1);
        assertEq(_swapAndCapture(false).requestId, bytes32(0));
        vm.roll(block.number + 1);
        assertTrue(_swapAndCapture(true).requestId != bytes32(0));
    }

    function test_afterSwap_pendingPastDeadline_requestsAgain() public {
        Request memory stale = _swapAndCapture(true);
        vm.roll(block.number + MIN_INTERVAL);
        vm.warp(block.timestamp + HOOK_TIMEOUT + 1);
        Request memory fresh = _swapAndCapture(false);
        assertTrue(fresh.requestId != bytes32(0) && fresh.requestId != stale.requestId);
        assertEq(_pending(), fresh.requestId);
    }

    function test_afterSwap_cannotPay_swapsWithoutRequest() public {
        vm.prank(owner);
        hook.setConfig(_config(PAID_TEMPLATE_ID));
        vm.prank(owner);
        hook.withdraw(payable(owner), 1 ether);
        int24 tickBefore = _tick(key);
        vm.expectEmit(address(hook));
        emit CoprocessorFeeHook.RequestUnaffordable(poolId, 0, AUTHOR_FEE);
        Request memory r = _swapAndCapture(true);
        assertEq(r.requestId, bytes32(0));
        assertLt(_tick(key), tickBefore); // the swap happened
        assertEq(_pending(), bytes32(0));
    }

    function test_afterSwap_coprocessorRefuses_swapsWithoutRequest() public {
        vm.prank(author);
        templates.deprecate(TEMPLATE_ID);
        vm.expectEmit(true, false, false, false, address(hook));
        emit CoprocessorFeeHook.RequestRefused(poolId, "");
        Request memory r = _swapAndCapture(true);
        assertEq(r.requestId, bytes32(0));
        assertEq(_pending(), bytes32(0));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          CALLBACK                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_onCoprocessorResponse_notCoprocessor_reverts() public {
        bytes32 id = _swapAndCapture(true).requestId;
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(CoprocessorClient.OnlyCoprocessor.selector, stranger));
        hook.onCoprocessorResponse(id, 0, abi.encode(uint256(0), uint24(3000)));
    }

    function test_onCoprocessorResponse_ok_setsFeeSeenByNextSwap() public {
        Request memory r = _swapAndCapture(true);
        vm.expectEmit(address(hook));
        emit CoprocessorFeeHook.FeeUpdated(poolId, r.requestId, 3000, 3000, 2500);
        _answer(r, 2500, 3000);
        assertEq(_lpFee(key), 3000);
        assertEq(_pending(), bytes32(0));

        vm.expectEmit(true, false, false, false, address(manager));
        emit IPoolManager.Swap(poolId, address(swapRouter), 0, 0, 0, 0, 0, 3000);
        _swap(key, false, SWAP);
    }

    function test_onCoprocessorResponse_feeAboveMax_clampsToMax() public {
        Request memory r = _swapAndCapture(true);
        vm.expectEmit(address(hook));
        emit CoprocessorFeeHook.FeeUpdated(poolId, r.requestId, MAX_FEE, 900_000, 1);
        _answer(r, 1, 900_000);
        assertEq(_lpFee(key), MAX_FEE);
    }

    function test_onCoprocessorResponse_feeBelowMin_clampsToMin() public {
        _answer(_swapAndCapture(true), 0, MIN_FEE + 1000);
        vm.roll(block.number + MIN_INTERVAL);
        _answer(_swapAndCapture(false), 0, 1);
        assertEq(_lpFee(key), MIN_FEE);
    }

    function test_onCoprocessorResponse_errorStatus_keepsFee() public {
        _answer(_swapAndCapture(true), 0, 4000);
        vm.roll(block.number + MIN_INTERVAL);
        Request memory r = _swapAndCapture(false);
        vm.expectEmit(address(hook));
        emit CoprocessorFeeHook.FeeKept(poolId, r.requestId, 2, "window starts before block 0");
        coprocessor.fulfill(_batch(_fulfillment(r, 2, "window starts before block 0", enclaveKey)));
        assertEq(_lpFee(key), 4000);
        assertEq(_pending(), bytes32(0)); // answered: the next swap may ask again
    }

    function test_onCoprocessorResponse_staleRequest_callbackFails() public {
        Request memory stale = _swapAndCapture(true);
        vm.roll(block.number + MIN_INTERVAL);
        vm.warp(block.timestamp + HOOK_TIMEOUT + 1);
        _swapAndCapture(false); // replaces the expired request
        // Not deliverable through the Coprocessor (expired); a direct call from it is refused by the hook.
        vm.prank(address(coprocessor));
        vm.expectRevert(abi.encodeWithSelector(CoprocessorFeeHook.UnknownRequest.selector, stale.requestId));
        hook.onCoprocessorResponse(stale.requestId, 0, abi.encode(uint256(0), uint24(3000)));
    }

    function test_onCoprocessorResponse_malformedOutput_keepsFeeAndFreesThePool() public {
        Request memory r = _swapAndCapture(true);
        vm.recordLogs();
        coprocessor.fulfill(_batch(_fulfillment(r, hex"01")));
        assertTrue(_callbackSucceeded(vm.getRecordedLogs())); // never reverts: the pool is not left waiting
        assertEq(_lpFee(key), MIN_FEE);
        (bytes32 pending,,) = hook.poolStates(key.toId());
        assertEq(pending, bytes32(0));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            ADMIN                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_setConfig_notOwner_reverts() public {
        vm.prank(stranger);
        vm.expectRevert();
        hook.setConfig(_config(TEMPLATE_ID));
    }

    function test_setConfig_minAboveMax_reverts() public {
        CoprocessorFeeHook.Config memory c = _config(TEMPLATE_ID);
        (c.minFee, c.maxFee) = (3000, 2000);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(CoprocessorFeeHook.InvalidFeeBounds.selector, 3000, 2000));
        hook.setConfig(c);
    }

    function test_setConfig_maxAboveHundredPercent_reverts() public {
        CoprocessorFeeHook.Config memory c = _config(TEMPLATE_ID);
        c.maxFee = LPFeeLibrary.MAX_LP_FEE + 1;
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(CoprocessorFeeHook.InvalidFeeBounds.selector, MIN_FEE, c.maxFee));
        hook.setConfig(c);
    }

    function test_setConfig_oneSample_reverts() public {
        CoprocessorFeeHook.Config memory c = _config(TEMPLATE_ID);
        c.samples = 1;
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(CoprocessorFeeHook.InvalidSampling.selector, 1, 2));
        hook.setConfig(c);
    }

    function test_withdraw_notOwner_reverts() public {
        vm.prank(stranger);
        vm.expectRevert();
        hook.withdraw(payable(stranger), 1);
    }

    function testFuzz_onCoprocessorResponse_anyFee_staysWithinBounds(uint24 proposed) public {
        _answer(_swapAndCapture(true), 0, proposed);
        uint24 fee = _lpFee(key);
        assertGe(fee, MIN_FEE);
        assertLe(fee, MAX_FEE);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function _params() private pure returns (SwapParams memory) {
        return SwapParams(true, -1, MIN_PRICE_LIMIT);
    }

    function _zeroDelta() private pure returns (BalanceDelta) {
        return BalanceDelta.wrap(0);
    }
}

/// @notice Gas of a swap on a plain pool (static 0.30% fee, no hook) and on the hook's pools, and of the
/// hook's callback. Every pool is initialised, funded and swapped once in `setUp`, which runs as its own
/// transaction, so each measured call starts cold as on chain: `key` has had its request answered (the
/// next swap sends one), `busy` has a request in flight (the next swap sends none). Figures are the
/// callee frame's gas (no 21k intrinsic, no calldata).
contract CoprocessorFeeHookGasTest is FeeHookTestBase {
    PoolKey internal plain;
    PoolKey internal busy;
    Fulfillment internal busyAnswer;

    function setUp() public override {
        super.setUp();
        plain = _initPool(IHooks(address(0)), 3000);
        _swap(plain, true, SWAP);
        _answer(_swapAndCapture(true), 100, 3000);

        busy = PoolKey(currency0, currency1, LPFeeLibrary.DYNAMIC_FEE_FLAG, 10, IHooks(address(hook)));
        vm.prank(owner);
        manager.initialize(busy, SQRT_PRICE_1_1);
        liquidityRouter.modifyLiquidity(busy, ModifyLiquidityParams(-6000, 6000, LIQUIDITY, 0), "");
        vm.recordLogs();
        _swap(busy, true, SWAP);
        busyAnswer = _fulfillment(_requestFromLogs(vm.getRecordedLogs()), abi.encode(uint256(2500), uint24(4000)));
        vm.roll(block.number + MIN_INTERVAL);
    }

    function test_swap_plainPool_gas() public {
        _swap(plain, false, SWAP);
        vm.snapshotGasLastCall("CoprocessorFeeHook", "swap, plain pool (no hook)");
    }

    function test_swap_hookPool_requestsFee_gas() public {
        _swap(key, false, SWAP);
        vm.snapshotGasLastCall("CoprocessorFeeHook", "swap, hook pool (sends a fee request)");
    }

    function test_swap_hookPool_requestInFlight_gas() public {
        _swap(busy, false, SWAP);
        vm.snapshotGasLastCall("CoprocessorFeeHook", "swap, hook pool (request in flight: none sent)");
    }

    function test_fulfill_hookCallback_gas() public {
        coprocessor.fulfill(_batch(busyAnswer));
        vm.snapshotGasLastCall("CoprocessorFeeHook", "fulfill single (hook callback sets the fee)");
    }
}
