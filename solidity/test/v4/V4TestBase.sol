// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {IPoolManager} from "@uniswap/v4-core/src/interfaces/IPoolManager.sol";
import {IHooks} from "@uniswap/v4-core/src/interfaces/IHooks.sol";
import {IERC20Minimal} from "@uniswap/v4-core/src/interfaces/external/IERC20Minimal.sol";
import {StateLibrary} from "@uniswap/v4-core/src/libraries/StateLibrary.sol";
import {TickMath} from "@uniswap/v4-core/src/libraries/TickMath.sol";
import {BalanceDelta} from "@uniswap/v4-core/src/types/BalanceDelta.sol";
import {Currency} from "@uniswap/v4-core/src/types/Currency.sol";
import {PoolId, PoolIdLibrary} from "@uniswap/v4-core/src/types/PoolId.sol";
import {PoolKey} from "@uniswap/v4-core/src/types/PoolKey.sol";
import {SwapParams, ModifyLiquidityParams} from "@uniswap/v4-core/src/types/PoolOperation.sol";

import {CoprocessorTestBase} from "../utils/CoprocessorTestBase.sol";

/// @notice v4-core's PoolSwapTest router, as shipped compiled in `@uniswap/v4-core/out`.
interface IPoolSwapTest {
    struct TestSettings {
        bool takeClaims;
        bool settleUsingBurn;
    }

    function swap(PoolKey memory key, SwapParams memory params, TestSettings memory testSettings, bytes memory hookData)
        external
        payable
        returns (BalanceDelta delta);
}

/// @notice v4-core's PoolModifyLiquidityTest router, as shipped compiled in `@uniswap/v4-core/out`.
interface IPoolModifyLiquidityTest {
    function modifyLiquidity(PoolKey memory key, ModifyLiquidityParams memory params, bytes memory hookData)
        external
        payable
        returns (BalanceDelta delta);
}

/// @notice The protocol of CoprocessorTestBase plus a local Uniswap v4: the real PoolManager and test
/// routers deployed from v4-core's shipped artifacts (never recompiled), two sorted test tokens approved
/// for the routers, and helpers to initialise a pool for any hook, add liquidity and swap.
abstract contract V4TestBase is CoprocessorTestBase {
    using PoolIdLibrary for PoolKey;
    using StateLibrary for IPoolManager;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         CONSTANTS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    string internal constant V4_OUT = "../node_modules/@uniswap/v4-core/out/";
    uint160 internal constant SQRT_PRICE_1_1 = 2 ** 96;
    int24 internal constant TICK_SPACING = 60;
    /// @dev Liquidity over a wide range: swaps of ~1e18 move the tick by tens of ticks.
    int256 internal constant LIQUIDITY = 100e18;
    uint160 internal constant MIN_PRICE_LIMIT = TickMath.MIN_SQRT_PRICE + 1;
    uint160 internal constant MAX_PRICE_LIMIT = TickMath.MAX_SQRT_PRICE - 1;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    IPoolManager internal manager;
    IPoolSwapTest internal swapRouter;
    IPoolModifyLiquidityTest internal liquidityRouter;
    Currency internal currency0;
    Currency internal currency1;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           SETUP                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function setUp() public virtual override {
        super.setUp();
        manager = IPoolManager(deployCode(string.concat(V4_OUT, "PoolManager.sol/PoolManager.json"), abi.encode(owner)));
        swapRouter = IPoolSwapTest(_deployV4("PoolSwapTest", abi.encode(manager)));
        liquidityRouter = IPoolModifyLiquidityTest(_deployV4("PoolModifyLiquidityTest", abi.encode(manager)));
        address a = _deployV4("TestERC20", abi.encode(type(uint256).max / 2));
        address b = _deployV4("TestERC20", abi.encode(type(uint256).max / 2));
        (currency0, currency1) = a < b ? (Currency.wrap(a), Currency.wrap(b)) : (Currency.wrap(b), Currency.wrap(a));
        for (uint256 i; i < 2; ++i) {
            IERC20Minimal token = IERC20Minimal(Currency.unwrap(i == 0 ? currency0 : currency1));
            token.approve(address(swapRouter), type(uint256).max);
            token.approve(address(liquidityRouter), type(uint256).max);
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Deploys `name` from v4-core's artifacts with ABI-encoded constructor `args`.
    function _deployV4(string memory name, bytes memory args) internal returns (address) {
        return deployCode(string.concat(V4_OUT, name, ".sol/", name, ".json"), args);
    }

    /// @notice Initialises a pool of the two tokens with `hooks` and `fee` at price 1, and adds wide liquidity.
    function _initPool(IHooks hooks, uint24 fee) internal returns (PoolKey memory key) {
        key = PoolKey(currency0, currency1, fee, TICK_SPACING, hooks);
        manager.initialize(key, SQRT_PRICE_1_1);
        liquidityRouter.modifyLiquidity(key, ModifyLiquidityParams(-6000, 6000, LIQUIDITY, 0), "");
    }

    /// @notice An exact-input swap of `amountIn` through the PoolSwapTest router.
    function _swap(PoolKey memory key, bool zeroForOne, uint256 amountIn) internal returns (BalanceDelta) {
        SwapParams memory params =
            SwapParams(zeroForOne, -int256(amountIn), zeroForOne ? MIN_PRICE_LIMIT : MAX_PRICE_LIMIT);
        return swapRouter.swap(key, params, IPoolSwapTest.TestSettings(false, false), "");
    }

    /// @notice The pool's current LP fee, from Slot0.
    function _lpFee(PoolKey memory key) internal view returns (uint24 fee) {
        (,,, fee) = manager.getSlot0(key.toId());
    }

    /// @notice The pool's current tick.
    function _tick(PoolKey memory key) internal view returns (int24 tick) {
        (, tick,,) = manager.getSlot0(key.toId());
    }
}
