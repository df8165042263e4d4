// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Script, console} from "forge-std/Script.sol";
import {IPoolManager} from "@uniswap/v4-core/src/interfaces/IPoolManager.sol";
import {Hooks} from "@uniswap/v4-core/src/libraries/Hooks.sol";
import {HookMiner} from "@uniswap/v4-periphery/src/utils/HookMiner.sol";

import {CoprocessorFeeHook} from "../src/examples/v4/CoprocessorFeeHook.sol";
import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";

/// @notice Deploys `CoprocessorFeeHook` at an address whose low bits carry its permission flags
///         (afterInitialize, afterSwap), through the deterministic CREATE2 deployer that Anvil and
///         most chains have at 0x4e59b44847b379578588920ca78fbf26c0b4956c.
/// @dev Environment: POOL_MANAGER, COPROCESSOR, TEMPLATE_ID (bytes32, e.g. v4-volatility's id),
///      and optionally MIN_FEE, MAX_FEE (hundredths of a bip). For example, on a `coprocessor dev` chain:
///      forge script script/DeployFeeHook.s.sol --rpc-url http://127.0.0.1:8545 --broadcast \
///        --private-key $KEY
contract DeployFeeHook is Script {
    address internal constant CREATE2_DEPLOYER = 0x4e59b44847b379578588920cA78FbF26c0B4956C;

    function run() external returns (CoprocessorFeeHook hook) {
        CoprocessorFeeHook.Config memory config = CoprocessorFeeHook.Config({
            templateId: vm.envBytes32("TEMPLATE_ID"),
            minFee: uint24(vm.envOr("MIN_FEE", uint256(500))),
            maxFee: uint24(vm.envOr("MAX_FEE", uint256(50_000))),
            samples: 4,
            blocksBetween: 2,
            minInterval: 1,
            callbackGasLimit: 100_000,
            timeout: 300
        });
        bytes memory args = abi.encode(
            IPoolManager(vm.envAddress("POOL_MANAGER")), ICoprocessor(vm.envAddress("COPROCESSOR")), config, msg.sender
        );
        uint160 flags = Hooks.AFTER_INITIALIZE_FLAG | Hooks.AFTER_SWAP_FLAG;
        (address expected, bytes32 salt) =
            HookMiner.find(CREATE2_DEPLOYER, flags, type(CoprocessorFeeHook).creationCode, args);

        vm.broadcast();
        hook = new CoprocessorFeeHook{salt: salt}(
            IPoolManager(vm.envAddress("POOL_MANAGER")), ICoprocessor(vm.envAddress("COPROCESSOR")), config, msg.sender
        );
        require(address(hook) == expected, "DeployFeeHook: mined address mismatch");
        console.log("CoprocessorFeeHook deployed at", address(hook));
    }
}
