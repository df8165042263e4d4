// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Test.sol";

import {SealedInputConsumer} from "../src/examples/SealedInputConsumer.sol";
import {Request} from "../src/interfaces/ICoprocessor.sol";

import {KeyRegistryTestBase} from "./KeyRegistry.t.sol";

/// @notice The sealed-input example: the request commits to the ciphertext, the header is checked before paying,
/// and an enclave's answer reaches the contract.
contract SealedInputConsumerTest is KeyRegistryTestBase {
    SealedInputConsumer internal sealedConsumer;

    function setUp() public override {
        super.setUp();
        sealedConsumer = new SealedInputConsumer(coprocessor, keyRegistry);
        _publishKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
    }

    function _envelope(uint64 epoch) internal pure returns (bytes memory) {
        return abi.encodePacked(uint8(1), epoch, keccak256("enc"), keccak256("ciphertext"), bytes16(keccak256("tag")));
    }

    function test_askSealed_commitsToTheCiphertextAndStoresTheAnswer() public {
        bytes memory sealedInput = _envelope(1);
        vm.recordLogs();
        bytes32 requestId = sealedConsumer.askSealed{value: FEE}(TEMPLATE_ID, sealedInput, TIMEOUT);
        Request memory r = _requestFromLogs(vm.getRecordedLogs());
        assertEq(r.requestId, requestId);
        assertEq(r.inputHash, keccak256(sealedInput), "the chain commits to the ciphertext");

        vm.prank(enclave);
        coprocessor.fulfill(_batch(_fulfillment(r, abi.encode(uint256(42)))));
        assertEq(sealedConsumer.outputs(requestId), abi.encode(uint256(42)));
    }

    function test_askSealed_revertsWhenNoKeysArePublished() public {
        vm.expectRevert(abi.encodeWithSelector(SealedInputConsumer.NoKeysPublished.selector, PAID_TEMPLATE_ID));
        sealedConsumer.askSealed{value: FEE}(PAID_TEMPLATE_ID, _envelope(1), TIMEOUT);
    }

    function test_askSealed_revertsWhenTheInputIsNotAnEnvelope() public {
        vm.expectRevert(SealedInputConsumer.NotSealed.selector);
        sealedConsumer.askSealed{value: FEE}(TEMPLATE_ID, abi.encode(uint256(30), uint256(12)), TIMEOUT);
        vm.expectRevert(SealedInputConsumer.NotSealed.selector);
        sealedConsumer.askSealed{value: FEE}(TEMPLATE_ID, hex"01", TIMEOUT);
    }

    function test_askSealed_revertsWhenSealedToAnEpochNotYetPublished() public {
        vm.expectRevert(abi.encodeWithSelector(SealedInputConsumer.UnknownEpoch.selector, uint64(2), uint64(1)));
        sealedConsumer.askSealed{value: FEE}(TEMPLATE_ID, _envelope(2), TIMEOUT);
    }
}
