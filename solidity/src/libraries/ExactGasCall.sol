// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Calls a contract with exactly the gas it was promised, or not at all.
library ExactGasCall {
    /// @notice Thrown when the caller did not leave enough gas to forward `gasLimit` whole.
    error InsufficientGasForCallback(uint256 gasLimit, uint256 gasLeft);

    /// @dev Gas spent between the `gasleft()` check and the CALL opcode, plus the cold-account surcharge.
    uint256 internal constant CALL_OVERHEAD = 5_000;

    /// @notice Calls `target` with `data` and exactly `gasLimit` gas; returns whether the call succeeded.
    /// @dev Note: by EIP-150 a call receives at most 63/64 of the gas left, so a submitter could
    /// otherwise starve the callback and still settle the request. Reverting here fails the whole
    /// transaction instead. Return data is never copied, so a callback cannot grief with a huge return.
    function call(address target, uint256 gasLimit, bytes memory data) internal returns (bool success) {
        uint256 available = gasleft();
        if (available < CALL_OVERHEAD || available - CALL_OVERHEAD - (available - CALL_OVERHEAD) / 64 < gasLimit) {
            revert InsufficientGasForCallback(gasLimit, available);
        }
        assembly ("memory-safe") {
            success := call(gasLimit, target, 0, add(data, 0x20), mload(data), 0, 0)
        }
    }
}
