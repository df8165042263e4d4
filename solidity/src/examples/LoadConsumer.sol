// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoprocessorClient} from "../CoprocessorClient.sol";
import {ICoprocessor} from "../interfaces/ICoprocessor.sol";

/// @notice A consumer for load tests: opens many requests in one transaction and counts the answers.
/// @dev Benchmarks feed the node with it, because thousands of single-request transactions stall Anvil.
contract LoadConsumer is CoprocessorClient {
    /// @notice Callback gas given to every request: enough to count the answer.
    uint32 public constant CALLBACK_GAS = 30_000;

    /// @notice How many callbacks arrived.
    uint256 public answered;

    constructor(ICoprocessor coprocessor_) CoprocessorClient(coprocessor_) {}

    /// @notice Opens `count` requests of `templateId` on `input`; `msg.value` is split evenly as their fees.
    function askMany(bytes32 templateId, bytes calldata input, uint256 count, uint64 timeout) external payable {
        uint256 fee = count == 0 ? 0 : msg.value / count;
        for (uint256 i; i < count; ++i) {
            _request(templateId, input, CALLBACK_GAS, timeout, fee);
        }
    }

    function _onResponse(bytes32, uint8, bytes calldata) internal override {
        ++answered;
    }
}
