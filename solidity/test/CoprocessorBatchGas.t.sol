// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Test.sol";

import {LoadConsumer} from "../src/examples/LoadConsumer.sol";
import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";
import {Request, Fulfillment} from "../src/libraries/RequestLib.sol";

import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice Gas of `fulfill` per item at batch sizes 1, 8, 32 and 64, with a consumer whose callback only
/// counts (`LoadConsumer`), written to `snapshots/CoprocessorBatch.json` and checked in.
/// @dev Note: every request and signature is prepared in `setUp` (its own transaction), so each measured
/// call starts with cold accounts and storage as on chain. One LoadConsumer request is settled in `setUp`,
/// so the payee balance and the consumer's counter are non-zero (steady state). For each size N:
/// - `fulfill xN`: the Coprocessor frame (execution: no 21k intrinsic, no calldata), callbacks included;
/// - `per item: callbacks`: the gas used inside the consumer's callback frames, divided by N, measured by
///   replaying the N callbacks from the same cold state (the state is then reverted);
/// - `per item: execution excl. callbacks`: (frame - callbacks) / N; cold account and slot costs included;
/// - `per item: intrinsic + calldata`: (21,000 + calldata gas of the transaction's `fulfill` input) / N, the
///   calldata priced per EIP-2028 (4 a zero byte, 16 otherwise); the EIP-7623 floor (10 a token) is lower
///   than the total for every size here, which `test_fulfill_gasBatch*` asserts;
/// - `per item: all-in excl. callbacks`: the sum of the two above, what a node pays per item.
contract CoprocessorBatchGasTest is CoprocessorTestBase {
    string internal constant GROUP = "CoprocessorBatch";
    /// @dev The same small input and output as `CoprocessorGasTest`.
    bytes internal constant INPUT = hex"00000000000000000000000000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000000000007"
        hex"4554482f55534400000000000000000000000000000000000000000000000000";
    bytes internal constant OUTPUT = hex"00000000000000000000000000000000000000000000000000000000000f4240";
    uint256 internal constant TX_BASE_GAS = 21_000;

    LoadConsumer internal load;
    /// @dev Prepared batches by size.
    mapping(uint256 size => Fulfillment[]) internal batches;

    function setUp() public override {
        super.setUp();
        load = new LoadConsumer(coprocessor);
        Fulfillment[] memory warm = _open(1);
        coprocessor.fulfill(warm);
        _prepare(1);
        _prepare(8);
        _prepare(32);
        _prepare(64);
    }

    /// @dev Opens `n` LoadConsumer requests in one transaction and signs an Ok answer to each.
    function _open(uint256 n) internal returns (Fulfillment[] memory fs) {
        vm.recordLogs();
        load.askMany{value: FEE * n}(TEMPLATE_ID, INPUT, n, TIMEOUT);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        fs = new Fulfillment[](n);
        uint256 k;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(coprocessor) || logs[i].topics[0] != REQUEST_SUBMITTED_SIG) continue;
            Vm.Log[] memory one = new Vm.Log[](1);
            one[0] = logs[i];
            fs[k++] = _fulfillment(_requestFromLogs(one), OUTPUT);
        }
        assertEq(k, n);
    }

    function _prepare(uint256 n) internal {
        Fulfillment[] memory fs = _open(n);
        for (uint256 i; i < n; ++i) {
            batches[n].push(fs[i]);
        }
    }

    /// @dev EIP-2028 calldata gas and EIP-7623 tokens of `data`.
    function _calldataGas(bytes memory data) internal pure returns (uint256 gas, uint256 tokens) {
        for (uint256 i; i < data.length; ++i) {
            if (data[i] == 0) {
                gas += 4;
                tokens += 1;
            } else {
                gas += 16;
                tokens += 4;
            }
        }
    }

    function _measure(uint256 n) internal {
        Fulfillment[] memory fs = batches[n];
        string memory tag = string.concat("fulfill x", vm.toString(n));
        uint256 callbacks = _callbackGas(fs);
        (uint256 calldataGas, uint256 tokens) = _calldataGas(abi.encodeCall(ICoprocessor.fulfill, (fs)));

        coprocessor.fulfill(fs);
        uint256 frame = vm.snapshotGasLastCall(GROUP, string.concat(tag, " (LoadConsumer)"));

        uint256 execution = frame - callbacks;
        // The EIP-7623 floor does not apply: the standard price is higher.
        assertGt(calldataGas + frame, 10 * tokens);
        vm.snapshotValue(GROUP, string.concat(tag, " per item: callbacks"), callbacks / n);
        vm.snapshotValue(GROUP, string.concat(tag, " per item: execution excl. callbacks"), execution / n);
        vm.snapshotValue(GROUP, string.concat(tag, " per item: intrinsic + calldata"), (TX_BASE_GAS + calldataGas) / n);
        vm.snapshotValue(
            GROUP, string.concat(tag, " per item: all-in excl. callbacks"), (TX_BASE_GAS + calldataGas + execution) / n
        );
        assertEq(load.answered(), 1 + n);
        for (uint256 i; i < n; ++i) {
            assertEq(
                uint8(coprocessor.requestState(fs[i].request.requestId)), uint8(ICoprocessor.RequestState.Fulfilled)
            );
        }
    }

    function test_fulfill_gasBatch1() public {
        _measure(1);
    }

    function test_fulfill_gasBatch8() public {
        _measure(8);
    }

    function test_fulfill_gasBatch32() public {
        _measure(32);
    }

    function test_fulfill_gasBatch64() public {
        _measure(64);
    }

    /// @dev Replaying the callbacks and reverting must leave the fulfil's own figure unchanged (cold stays cold).
    function test_callbackReplayDoesNotWarmState() public {
        Fulfillment[] memory fs = batches[8];
        uint256 snapshot = vm.snapshotState();
        coprocessor.fulfill(fs);
        uint256 plain = vm.lastCallGas().gasTotalUsed;
        vm.revertToState(snapshot);
        _callbackGas(fs);
        coprocessor.fulfill(fs);
        assertEq(vm.lastCallGas().gasTotalUsed, plain);
    }
}
