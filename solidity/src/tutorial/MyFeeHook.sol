// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {BaseHook} from "@openzeppelin/uniswap-hooks/base/BaseHook.sol";
import {IPoolManager} from "@uniswap/v4-core/src/interfaces/IPoolManager.sol";
import {Hooks} from "@uniswap/v4-core/src/libraries/Hooks.sol";
import {BalanceDelta} from "@uniswap/v4-core/src/types/BalanceDelta.sol";
import {PoolId, PoolIdLibrary} from "@uniswap/v4-core/src/types/PoolId.sol";
import {PoolKey} from "@uniswap/v4-core/src/types/PoolKey.sol";
import {SwapParams} from "@uniswap/v4-core/src/types/PoolOperation.sol";

import {CoprocessorClient} from "../CoprocessorClient.sol";
import {ICoprocessor} from "../interfaces/ICoprocessor.sol";

/// @notice After every swap, asks a template for a new LP fee; the callback sets it.
contract MyFeeHook is BaseHook, CoprocessorClient {
    using PoolIdLibrary for PoolKey;

    event FeeSet(bytes32 indexed requestId, uint24 fee);

    bytes32 public immutable templateId;
    mapping(bytes32 requestId => PoolKey) internal pools;

    constructor(IPoolManager manager, ICoprocessor coprocessor_, bytes32 templateId_)
        BaseHook(manager)
        CoprocessorClient(coprocessor_)
    {
        templateId = templateId_;
    }

    function getHookPermissions() public pure override returns (Hooks.Permissions memory permissions) {
        permissions.afterSwap = true;
    }

    function _afterSwap(address, PoolKey calldata key, SwapParams calldata, BalanceDelta, bytes calldata)
        internal
        override
        returns (bytes4, int128)
    {
        // v4-volatility's input: the pool, 4 samples 1 block apart, fee bounds (hundredths of a bip).
        bytes memory input =
            abi.encode(address(poolManager), PoolId.unwrap(key.toId()), uint16(4), uint16(1), uint24(500), uint24(50_000));
        uint256 fee = coprocessor.requestFee(templateId);
        // Never let a request revert the swap (an empty budget, a deprecated template): skip it instead.
        if (address(this).balance >= fee) {
            try coprocessor.request{value: fee}(templateId, input, 100_000, 600) returns (bytes32 requestId) {
                pools[requestId] = key;
            } catch {}
        }
        return (this.afterSwap.selector, 0);
    }

    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal override {
        PoolKey memory key = pools[requestId];
        delete pools[requestId];
        if (status != 0) return; // an error keeps the current fee
        (, uint24 fee) = abi.decode(output, (uint256, uint24));
        poolManager.updateDynamicLPFee(key, fee);
        emit FeeSet(requestId, fee);
    }

    receive() external payable {} // request fees are paid from this balance
}
