// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Implemented by contracts that receive the runs of a `Subscriptions` schedule.
interface ISubscriptionConsumer {
    /// @notice Delivers the enclave-signed result of one scheduled run. Called only by the `Subscriptions` contract,
    /// with exactly the subscription's `callbackGas`.
    /// @dev Note: check `msg.sender`; a revert here is recorded (`RunSettled` with `consumerSucceeded` false), the
    /// run stays settled and is not retried.
    /// @param subscriptionId The id `Subscriptions.create` returned
    /// @param runIndex The 0-based index of the run in the schedule (run k is due at `startAt + k * interval`)
    /// @param status A `Status` value: 0 is Ok, anything else is an error
    /// @param output ABI-encoded template outputs when Ok, else a short UTF-8 reason
    function onSubscriptionRun(uint256 subscriptionId, uint64 runIndex, uint8 status, bytes calldata output) external;
}
