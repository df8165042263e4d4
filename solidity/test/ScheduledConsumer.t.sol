// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ScheduledConsumer} from "../src/examples/ScheduledConsumer.sol";
import {ISubscriptions} from "../src/interfaces/ISubscriptions.sol";
import {Request} from "../src/libraries/RequestLib.sol";

import {SubscriptionsTestBase} from "./Subscriptions.t.sol";

/// @notice The example subscription consumer: it takes runs from its Subscriptions contract only, and stores the
/// latest run of each subscription.
contract ScheduledConsumerTest is SubscriptionsTestBase {
    ScheduledConsumer internal example;

    function setUp() public override {
        super.setUp();
        example = new ScheduledConsumer(address(subs));
    }

    /// @notice A RunLate subscription of `subscriber` delivering to `example`, with a budget for every run.
    function _createForExample(uint64 timeout) internal returns (uint256 id) {
        vm.prank(subscriber);
        id = subs.create{value: MAX_RUNS * RUN_FEE}(
            address(example),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, MAX_RUNS, TOLERANCE, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            timeout
        );
    }

    function _assertLatest(uint256 id, uint64 runIndex, uint8 status, bytes memory output) internal view {
        ScheduledConsumer.LatestRun memory got = example.latestRun(id);
        assertTrue(got.received, "received");
        assertEq(got.runIndex, runIndex, "runIndex");
        assertEq(got.status, status, "status");
        assertEq(got.output, output, "output");
    }

    function test_constructor_setsSubscriptions() public view {
        assertEq(example.subscriptions(), address(subs));
    }

    function test_onSubscriptionRun_revertsForAnyoneButSubscriptions() public {
        vm.expectRevert(abi.encodeWithSelector(ScheduledConsumer.OnlySubscriptions.selector, stranger));
        vm.prank(stranger);
        example.onSubscriptionRun(1, 0, 0, OUTPUT);
        // Not even the Coprocessor, which calls Subscriptions, not its consumers.
        vm.expectRevert(abi.encodeWithSelector(ScheduledConsumer.OnlySubscriptions.selector, address(coprocessor)));
        vm.prank(address(coprocessor));
        example.onSubscriptionRun(1, 0, 0, OUTPUT);
        assertFalse(example.latestRun(1).received);
        assertEq(example.runCount(1), 0);
    }

    function test_onSubscriptionRun_storesTheLatestRunAndCountsRuns() public {
        uint256 id = _createForExample(RUN_TIMEOUT);
        assertFalse(example.latestRun(id).received, "nothing before the first run");

        vm.warp(_due(0));
        Request memory r0 = _trigger(id);
        vm.expectEmit(true, true, true, true, address(example));
        emit ScheduledConsumer.RunReceived(id, 0, 0, OUTPUT);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunSettled(id, 0, r0.requestId, 0, true);
        _fulfil(r0, 0, OUTPUT);
        _assertLatest(id, 0, 0, OUTPUT);
        assertEq(example.runCount(id), 1);

        // An error status is a run too: its reason replaces the previous output.
        vm.warp(_due(1));
        _fulfil(_trigger(id), 2, "bad input");
        _assertLatest(id, 1, 2, "bad input");
        assertEq(example.runCount(id), 2);

        vm.warp(_due(2));
        _fulfil(_trigger(id), 0, hex"2a");
        _assertLatest(id, 2, 0, hex"2a");
        assertEq(example.runCount(id), 3);
        _assertSolvent();
    }

    function test_onSubscriptionRun_keepsEachSubscriptionApart() public {
        uint256 a = _createForExample(RUN_TIMEOUT);
        uint256 b = _createForExample(RUN_TIMEOUT);
        vm.warp(_due(0));
        Request memory ra = _trigger(a);
        Request memory rb = _trigger(b);
        _fulfil(rb, 0, hex"0b");
        _fulfil(ra, 0, hex"0a");
        _assertLatest(a, 0, 0, hex"0a");
        _assertLatest(b, 0, 0, hex"0b");
        assertEq(example.runCount(a), 1);
        assertEq(example.runCount(b), 1);
    }

    /// @notice Run 1 is triggered while run 0 is pending and answered first: run 0, answered later, is counted but
    /// does not replace it.
    function test_onSubscriptionRun_anOlderRunAnsweredLateIsCountedNotStored() public {
        uint256 id = _createForExample(2 * INTERVAL);
        vm.warp(_due(0));
        Request memory r0 = _trigger(id);
        vm.warp(_due(1));
        Request memory r1 = _trigger(id);

        _fulfil(r1, 0, hex"01");
        vm.expectEmit(true, true, true, true, address(example));
        emit ScheduledConsumer.RunReceived(id, 0, 0, hex"00");
        _fulfil(r0, 0, hex"00");
        _assertLatest(id, 1, 0, hex"01");
        assertEq(example.runCount(id), 2);
    }
}
