// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ICoprocessor} from "./interfaces/ICoprocessor.sol";
import {ICoprocessorConsumer} from "./interfaces/ICoprocessorConsumer.sol";

/// @notice Base for consumers: request with `_request`, handle results in `_onResponse`.
abstract contract CoprocessorClient is ICoprocessorConsumer {
    /// @notice Thrown when anyone but the Coprocessor delivers a response.
    error OnlyCoprocessor(address caller);

    /// @notice The Coprocessor this consumer trusts for responses.
    ICoprocessor public immutable coprocessor;

    constructor(ICoprocessor coprocessor_) {
        coprocessor = coprocessor_;
    }

    /// @inheritdoc ICoprocessorConsumer
    function onCoprocessorResponse(bytes32 requestId, uint8 status, bytes calldata output) external {
        if (msg.sender != address(coprocessor)) revert OnlyCoprocessor(msg.sender);
        _onResponse(requestId, status, output);
    }

    /// @notice Asks the Coprocessor to run `templateId` on `input`, paying `fee` from this contract's balance.
    function _request(bytes32 templateId, bytes memory input, uint32 callbackGasLimit, uint64 timeout, uint256 fee)
        internal
        returns (bytes32 requestId)
    {
        return coprocessor.request{value: fee}(templateId, input, callbackGasLimit, timeout);
    }

    /// @notice Sends this consumer's refunds (from cancelled requests) held by the Coprocessor to `to`.
    /// @dev Note: expose it behind your own access control; refunds are credited, never pushed.
    function _withdrawRefunds(address payable to) internal {
        coprocessor.withdraw(to);
    }

    /// @notice Handles a verified response. Runs with exactly the callback gas limit of the request.
    /// @dev Note: a revert here is recorded by the Coprocessor as a failed callback; the request stays settled.
    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal virtual;
}
