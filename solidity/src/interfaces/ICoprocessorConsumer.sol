// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Implemented by contracts that receive coprocessor responses.
interface ICoprocessorConsumer {
    /// @notice Delivers the enclave-signed result of a request. Called only by the Coprocessor.
    /// @param requestId The id returned by `ICoprocessor.request`.
    /// @param status A `Status` value: 0 is Ok, anything else is an error.
    /// @param output ABI-encoded template outputs when Ok, else a short UTF-8 reason.
    function onCoprocessorResponse(bytes32 requestId, uint8 status, bytes calldata output) external;
}
