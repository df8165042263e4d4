// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISubscriptionConsumer} from "../interfaces/ISubscriptionConsumer.sol";

/// @notice A plain consumer of scheduled runs (a `Subscriptions` schedule): the latest run's result of each
/// subscription is stored for anyone to read, and runs are counted. Copy it and act on `output` instead.
/// @dev Note: `Subscriptions` calls back with exactly the subscription's `callbackGas`, and a revert here is only
/// recorded (`RunSettled` with `consumerSucceeded` false; the run stays settled, it is not retried). Storing costs
/// about 22k gas per 32 bytes written from zero, so give the subscription enough callback gas for the largest output
/// you expect.
/// @dev Note: runs may settle out of order (a run can be triggered while the one before it is still pending), so a
/// run older than the one stored is counted but not stored.
contract ScheduledConsumer is ISubscriptionConsumer {
    /// @notice The latest run (highest index) delivered for a subscription. `received` is false until one is.
    struct LatestRun {
        bool received;
        uint64 runIndex;
        uint8 status;
        bytes output;
    }

    /// @notice Thrown when anyone but the Subscriptions contract delivers a run.
    error OnlySubscriptions(address caller);

    /// @notice Emitted when a run's result arrives.
    event RunReceived(uint256 indexed subscriptionId, uint64 indexed runIndex, uint8 status, bytes output);

    /// @notice The only contract that may deliver runs.
    address public immutable subscriptions;

    /// @notice The latest run delivered (highest index), by subscription id.
    mapping(uint256 subscriptionId => LatestRun) public latestRuns;

    /// @notice How many runs arrived, by subscription id: each run is delivered once, whatever its status.
    mapping(uint256 subscriptionId => uint256) public runCount;

    constructor(address subscriptions_) {
        subscriptions = subscriptions_;
    }

    /// @inheritdoc ISubscriptionConsumer
    function onSubscriptionRun(uint256 subscriptionId, uint64 runIndex, uint8 status, bytes calldata output) external {
        if (msg.sender != subscriptions) revert OnlySubscriptions(msg.sender);
        ++runCount[subscriptionId];
        emit RunReceived(subscriptionId, runIndex, status, output);
        LatestRun storage latest = latestRuns[subscriptionId];
        if (latest.received && runIndex < latest.runIndex) return;
        latestRuns[subscriptionId] = LatestRun({received: true, runIndex: runIndex, status: status, output: output});
    }

    /// @notice The latest run (highest index) delivered for `subscriptionId`.
    function latestRun(uint256 subscriptionId) external view returns (LatestRun memory) {
        return latestRuns[subscriptionId];
    }
}
