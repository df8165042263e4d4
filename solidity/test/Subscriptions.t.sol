// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Test.sol";

import {Coprocessor} from "../src/Coprocessor.sol";
import {CoprocessorClient} from "../src/CoprocessorClient.sol";
import {Subscriptions} from "../src/Subscriptions.sol";
import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";
import {ISubscriptionConsumer} from "../src/interfaces/ISubscriptionConsumer.sol";
import {ISubscriptions} from "../src/interfaces/ISubscriptions.sol";
import {CronLib} from "../src/libraries/CronLib.sol";
import {Request, Fulfillment} from "../src/libraries/RequestLib.sol";

import {CronLibHarness, CronSpecs} from "./CronLib.t.sol";
import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice A subscription consumer that records what it is given, or misbehaves on demand.
contract RunConsumer is ISubscriptionConsumer {
    /// @notice What the callback does.
    enum Mode {
        Store,
        Revert,
        BurnGas,
        Probe
    }

    address public immutable subscriptions;

    Mode public mode;
    /// @notice `gasleft()` at the first statement of the last callback that returned.
    uint256 public gasAtEntry;
    uint256 public calls;
    uint256 public lastId;
    uint64 public lastRunIndex;
    uint8 public lastStatus;
    bytes public lastOutput;

    constructor(address subscriptions_) {
        subscriptions = subscriptions_;
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @inheritdoc ISubscriptionConsumer
    function onSubscriptionRun(uint256 id, uint64 runIndex, uint8 status, bytes calldata output) external {
        uint256 g = gasleft();
        require(msg.sender == subscriptions, "only subscriptions");
        Mode m = mode;
        if (m == Mode.Revert) revert("consumer says no");
        if (m == Mode.BurnGas) {
            uint256 x;
            while (true) {
                x = uint256(keccak256(abi.encode(x)));
            }
        }
        gasAtEntry = g;
        ++calls;
        if (m == Mode.Probe) return;
        lastId = id;
        lastRunIndex = runIndex;
        lastStatus = status;
        lastOutput = output;
    }
}

/// @notice The shared stack (registry, enclave, templates, Coprocessor with a non-zero `minFee`) plus a
/// Subscriptions contract, a recording consumer and helpers to create, trigger and answer runs as a subscriber
/// and a node would.
abstract contract SubscriptionsTestBase is CoprocessorTestBase {
    uint96 internal constant MIN_FEE = 0.001 ether;
    /// @dev What each run of the paid template costs: the Coprocessor's minimum fee and the author fee.
    uint256 internal constant RUN_FEE = MIN_FEE + AUTHOR_FEE;
    uint64 internal constant INTERVAL = 1 hours;
    uint64 internal constant TOLERANCE = 10 minutes;
    uint32 internal constant CALLBACK_GAS = 200_000;
    uint64 internal constant RUN_TIMEOUT = 30 minutes;
    uint64 internal constant MAX_RUNS = 10;
    /// @dev Run 0 is due an hour after the test starts.
    uint64 internal constant START = uint64(START_TIME) + 1 hours;
    bytes internal constant OUTPUT = hex"000000000000000000000000000000000000000000000000000000000004cb2f";

    bytes internal input = abi.encode("ETH/USD");
    address internal subscriber = makeAddr("subscriber");

    Subscriptions internal subs;
    RunConsumer internal runConsumer;

    function setUp() public virtual override {
        super.setUp();
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 16 * 1024, 2_000_000, 7 days, MIN_FEE));
        subs = new Subscriptions(coprocessor);
        runConsumer = new RunConsumer(address(subs));
        vm.deal(subscriber, 100 ether);
    }

    /// @notice A subscription of `subscriber` to the paid template with the given policy, tolerance, runs and budget.
    function _create(ISubscriptions.MissedPolicy policy, uint64 tolerance, uint64 maxRuns, uint256 budget)
        internal
        returns (uint256 id)
    {
        vm.prank(subscriber);
        id = subs.create{value: budget}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, maxRuns, tolerance, policy),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
    }

    function _schedule(
        uint64 startAt,
        uint64 interval,
        uint64 maxRuns,
        uint64 tolerance,
        ISubscriptions.MissedPolicy policy
    ) internal pure returns (ISubscriptions.Schedule memory) {
        return ISubscriptions.Schedule({
            startAt: startAt, interval: interval, maxRuns: maxRuns, tolerance: tolerance, policy: policy, cron: 0
        });
    }

    /// @notice A cron schedule from `startAt`: `spec`, `maxRuns` runs started at most.
    function _cronSchedule(
        uint256 spec,
        uint64 startAt,
        uint64 maxRuns,
        uint64 tolerance,
        ISubscriptions.MissedPolicy policy
    ) internal pure returns (ISubscriptions.Schedule memory) {
        return ISubscriptions.Schedule({
            startAt: startAt, interval: 0, maxRuns: maxRuns, tolerance: tolerance, policy: policy, cron: spec
        });
    }

    /// @notice A cron subscription of `subscriber` to the paid template, from `START`.
    function _createCron(
        uint256 spec,
        ISubscriptions.MissedPolicy policy,
        uint64 tolerance,
        uint64 maxRuns,
        uint256 budget
    ) internal returns (uint256 id) {
        vm.prank(subscriber);
        id = subs.create{value: budget}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _cronSchedule(spec, START, maxRuns, tolerance, policy),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
    }

    /// @notice The default subscription: RunLate, `TOLERANCE`, `MAX_RUNS` runs, a budget for all of them.
    function _create() internal returns (uint256) {
        return _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
    }

    /// @notice When run `k` of a subscription starting at `START` is due.
    function _due(uint256 k) internal pure returns (uint256) {
        return START + k * INTERVAL;
    }

    /// @notice Due time `k` of "0 9 * * 1-5" (weekdays at 09:00 UTC) from `START`, Tuesday 2023-11-14 23:13:20:
    /// Wednesday 2023-11-15 09:00 (1700038800), Thursday, Friday, then Monday, Tuesday, and so on, hand-computed.
    function _cronDue(uint256 k) internal pure returns (uint256) {
        uint256 r = k % 5;
        return 1_700_038_800 + ((k / 5) * 7 + (r < 3 ? r : r + 2)) * 1 days;
    }

    /// @notice Triggers `id` and rebuilds the run's request, and its input, from the Coprocessor's log.
    function _triggerWithInput(uint256 id) internal returns (Request memory r, bytes memory requestInput) {
        vm.recordLogs();
        bytes32 requestId = subs.trigger(id);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        r = _requestFromLogs(logs);
        assertEq(r.requestId, requestId, "trigger returns the request id");
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(coprocessor) && logs[i].topics[0] == REQUEST_SUBMITTED_SIG) {
                (requestInput) = abi.decode(logs[i].data, (bytes));
            }
        }
    }

    /// @notice Triggers `id` and rebuilds the run's request.
    function _trigger(uint256 id) internal returns (Request memory r) {
        (r,) = _triggerWithInput(id);
    }

    /// @notice Settles `r` with a response signed by the registered enclave.
    function _fulfil(Request memory r, uint8 status, bytes memory output) internal {
        coprocessor.fulfill(_batch(_fulfillment(r, status, output, enclaveKey)));
    }

    /// @notice The request gas a run of `callbackGas` asks for.
    function _requestGas(uint32 callbackGas) internal view returns (uint32) {
        return callbackGas + callbackGas / 64 + subs.CALLBACK_OVERHEAD();
    }

    /// @notice The ether this contract holds or has credited at the Coprocessor covers every budget.
    function _assertSolvent() internal view {
        uint256 owed;
        for (uint256 id = 1; id <= subs.subscriptionCount(); ++id) {
            owed += subs.subscriptions(id).budget;
        }
        assertGe(address(subs).balance + coprocessor.balanceOf(address(subs)), owed, "solvent");
    }
}

/// @notice Unit and fuzz tests of subscriptions: create, fund, runs and their index, the due rule, missed-run
/// policies, settlement through the consumer, refunds of expired and failed runs, cancel and withdraw.
contract SubscriptionsTest is SubscriptionsTestBase {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     CONSTRUCTOR, CREATE                    */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_constructor_setsCoprocessorAndTemplateRegistry() public view {
        assertEq(address(subs.coprocessor()), address(coprocessor));
        assertEq(address(subs.templateRegistry()), address(templates));
        assertEq(subs.subscriptionCount(), 0);
    }

    function test_create_storesTheSubscription() public {
        uint256 id = _create();
        assertEq(id, 1);
        assertEq(subs.subscriptionCount(), 1);
        ISubscriptions.Subscription memory s = subs.subscriptions(id);
        assertEq(s.consumer, address(runConsumer));
        assertEq(s.callbackGas, CALLBACK_GAS);
        assertEq(uint8(s.policy), uint8(ISubscriptions.MissedPolicy.RunLate));
        assertFalse(s.cancelled);
        assertEq(s.owner, subscriber);
        assertEq(s.budget, MAX_RUNS * RUN_FEE);
        assertEq(s.startAt, START);
        assertEq(s.interval, INTERVAL);
        assertEq(s.maxRuns, MAX_RUNS);
        assertEq(s.nextRun, 0);
        assertEq(s.tolerance, TOLERANCE);
        assertEq(s.timeout, RUN_TIMEOUT);
        assertEq(s.templateId, PAID_TEMPLATE_ID);
        assertEq(s.input, input);
        assertEq(address(subs).balance, MAX_RUNS * RUN_FEE);
        assertEq(_create(), 2);
    }

    function test_create_emitsEveryField() public {
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.SubscriptionCreated(
            1,
            subscriber,
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            START,
            INTERVAL,
            0,
            3,
            TOLERANCE,
            ISubscriptions.MissedPolicy.Skip,
            CALLBACK_GAS,
            RUN_TIMEOUT,
            uint96(RUN_FEE)
        );
        _create(ISubscriptions.MissedPolicy.Skip, TOLERANCE, 3, RUN_FEE);
    }

    function test_create_zeroStartAtMeansNow() public {
        vm.prank(subscriber);
        uint256 id = subs.create(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(0, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        assertEq(subs.subscriptions(id).startAt, block.timestamp);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 0);
        assertEq(dueAt, block.timestamp);
    }

    function test_create_revertsOnZeroConsumer() public {
        vm.expectRevert(ISubscriptions.InvalidConsumer.selector);
        subs.create(
            address(0),
            TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
    }

    function test_create_revertsOnZeroIntervalOrMaxRuns() public {
        vm.expectRevert(ISubscriptions.InvalidSchedule.selector);
        subs.create(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(START, 0, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        vm.expectRevert(ISubscriptions.InvalidSchedule.selector);
        subs.create(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 0, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
    }

    function test_create_revertsOnZeroOrOversizedCallbackGas() public {
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.InvalidCallbackGas.selector, uint32(0)));
        subs.create(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            0,
            RUN_TIMEOUT
        );
        uint32 tooMuch = type(uint32).max - subs.CALLBACK_OVERHEAD();
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.InvalidCallbackGas.selector, tooMuch));
        subs.create(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            tooMuch,
            RUN_TIMEOUT
        );
    }

    function test_create_revertsOnBudgetOverUint96() public {
        uint256 budget = uint256(type(uint96).max) + 1;
        vm.deal(subscriber, budget);
        vm.prank(subscriber);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.BudgetTooLarge.selector, budget));
        subs.create{value: budget}(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
    }

    function test_subscriptions_unknownIdIsAllZero() public view {
        ISubscriptions.Subscription memory s = subs.subscriptions(7);
        assertEq(s.owner, address(0));
        (, uint256 dueAt) = subs.nextRunAt(7);
        assertEq(dueAt, type(uint256).max);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            FUND                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_fund_addsToTheBudgetFromAnyone() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, 0);
        vm.deal(stranger, 1 ether);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.Funded(id, stranger, 0.3 ether, 0.3 ether);
        vm.prank(stranger);
        subs.fund{value: 0.3 ether}(id);
        vm.prank(subscriber);
        subs.fund{value: 0.2 ether}(id);
        assertEq(subs.subscriptions(id).budget, 0.5 ether);
        assertEq(address(subs).balance, 0.5 ether);
    }

    function test_fund_revertsForUnknownOrCancelled() public {
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.UnknownSubscription.selector, 1));
        subs.fund{value: 1}(1);
        uint256 id = _create();
        vm.prank(subscriber);
        subs.cancel(id);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionIsCancelled.selector, id));
        subs.fund{value: 1}(id);
    }

    function test_fund_revertsOnBudgetOverUint96() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, 1);
        uint256 amount = type(uint96).max;
        vm.deal(stranger, amount);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.BudgetTooLarge.selector, amount + 1));
        subs.fund{value: amount}(id);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                      TRIGGER AND RUNS                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_trigger_sendsARequestCarryingTheRunIndex() public {
        uint256 id = _create();
        vm.warp(_due(0));
        vm.expectEmit(true, true, false, true, address(subs));
        emit ISubscriptions.RunTriggered(id, 0, bytes32(0), uint96(RUN_FEE));
        (Request memory r, bytes memory requestInput) = _triggerWithInput(id);

        // The enclave signs a commitment to this input: the run index is part of what it answers.
        assertEq(requestInput, abi.encode(uint64(0), input));
        assertEq(r.inputHash, keccak256(requestInput));
        assertEq(r.consumer, address(subs));
        assertEq(r.templateId, PAID_TEMPLATE_ID);
        assertEq(r.fee, RUN_FEE);
        assertEq(r.callbackGasLimit, _requestGas(CALLBACK_GAS));
        assertEq(r.deadline, block.timestamp + RUN_TIMEOUT);

        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
        assertEq(subs.subscriptions(id).nextRun, 1);
        (uint256 runId, uint64 runIndex, uint96 fee) = subs.runOf(r.requestId);
        assertEq(runId, id);
        assertEq(runIndex, 0);
        assertEq(fee, RUN_FEE);
        assertEq(address(subs).balance, (MAX_RUNS - 1) * RUN_FEE);
        assertEq(address(coprocessor).balance, RUN_FEE);
    }

    function test_trigger_fulfilledRunReachesTheConsumer() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);

        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunSettled(id, 0, r.requestId, 0, true);
        _fulfil(r, 0, OUTPUT);

        assertEq(runConsumer.calls(), 1);
        assertEq(runConsumer.lastId(), id);
        assertEq(runConsumer.lastRunIndex(), 0);
        assertEq(runConsumer.lastStatus(), 0);
        assertEq(runConsumer.lastOutput(), OUTPUT);
        (uint256 runId,,) = subs.runOf(r.requestId);
        assertEq(runId, 0, "forgotten once settled");
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
        // The fee went to the author and the enclave's payee, as for any request.
        assertEq(coprocessor.balanceOf(author), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), MIN_FEE);
        _assertSolvent();
    }

    function test_trigger_runsEachRunOnceInOrderWithItsIndex() public {
        uint256 id = _create();
        for (uint64 k; k < 3; ++k) {
            vm.warp(_due(k) + 1 minutes);
            (Request memory r, bytes memory requestInput) = _triggerWithInput(id);
            assertEq(requestInput, abi.encode(k, input));
            _fulfil(r, 0, abi.encode(uint256(k) * 100));
            assertEq(runConsumer.lastRunIndex(), k);
            assertEq(runConsumer.lastOutput(), abi.encode(uint256(k) * 100));
        }
        assertEq(runConsumer.calls(), 3);
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 3) * RUN_FEE);
        _assertSolvent();
    }

    function test_trigger_revertsBeforeTheRunIsDue() public {
        uint256 id = _create();
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _due(0)));
        subs.trigger(id);
        vm.warp(_due(0) - 1);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _due(0)));
        subs.trigger(id);
        vm.warp(_due(0));
        _trigger(id);
    }

    function test_trigger_sameRunCannotBeTriggeredTwice() public {
        uint256 id = _create();
        vm.warp(_due(0));
        _trigger(id);
        // The run index advanced: the next trigger asks for run 1, not due yet.
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _due(1)));
        subs.trigger(id);
        vm.warp(_due(0) + TOLERANCE);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _due(1)));
        subs.trigger(id);
        assertEq(subs.subscriptions(id).nextRun, 1);
    }

    function test_trigger_revertsWhenTheBudgetCannotPay() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, RUN_FEE + RUN_FEE / 2);
        vm.warp(_due(0));
        _trigger(id);
        vm.warp(_due(1));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.InsufficientBudget.selector, id, RUN_FEE / 2, RUN_FEE));
        subs.trigger(id);
        // Funded in time, the same run starts.
        subs.fund{value: RUN_FEE / 2}(id);
        Request memory r = _trigger(id);
        (, uint64 runIndex,) = subs.runOf(r.requestId);
        assertEq(runIndex, 1);
        assertEq(subs.subscriptions(id).budget, 0);
    }

    function test_trigger_revertsOnceMaxRunsAreDone() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, 2, 5 * RUN_FEE);
        vm.warp(_due(0));
        _trigger(id);
        vm.warp(_due(1));
        _trigger(id);
        vm.warp(_due(2));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionFinished.selector, id));
        subs.trigger(id);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 2);
        assertEq(dueAt, type(uint256).max);
        assertEq(subs.subscriptions(id).budget, 3 * RUN_FEE);
    }

    function test_trigger_revertsWhenCancelledOrUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.UnknownSubscription.selector, 1));
        subs.trigger(1);
        uint256 id = _create();
        vm.prank(subscriber);
        subs.cancel(id);
        vm.warp(_due(0));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionIsCancelled.selector, id));
        subs.trigger(id);
        (, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(dueAt, type(uint256).max);
    }

    function test_trigger_freeTemplateNeedsNoBudget() public {
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 16 * 1024, 2_000_000, 7 days, 0));
        vm.prank(subscriber);
        uint256 id = subs.create(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 2, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        assertEq(r.fee, 0);
        _fulfil(r, 1, "template failed");
        assertEq(runConsumer.lastStatus(), 1);
        assertEq(subs.subscriptions(id).budget, 0);
    }

    function test_trigger_bubblesTheCoprocessorsRefusal() public {
        vm.prank(subscriber);
        uint256 id = subs.create(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            2_000_000,
            RUN_TIMEOUT
        );
        subs.fund{value: RUN_FEE}(id);
        vm.warp(_due(0));
        vm.expectRevert(
            abi.encodeWithSelector(ICoprocessor.InvalidCallbackGasLimit.selector, _requestGas(2_000_000), 2_000_000)
        );
        subs.trigger(id);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        MISSED RUNS                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_trigger_runLateStartsARunWithinItsTolerance() public {
        uint256 id = _create();
        vm.warp(_due(0) + TOLERANCE);
        Request memory r = _trigger(id);
        (, uint64 runIndex,) = subs.runOf(r.requestId);
        assertEq(runIndex, 0);
    }

    function test_trigger_runLateRecordsARunPastItsToleranceMissed() public {
        uint256 id = _create();
        vm.warp(_due(0) + TOLERANCE + 1);
        // Run 0 is missed and run 1 not due: the trigger records the miss and starts nothing.
        (uint64 next, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(next, 1);
        assertEq(dueAt, _due(1));
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 0, 1);
        assertEq(subs.trigger(id), bytes32(0));
        assertEq(subs.subscriptions(id).nextRun, 1);
        assertEq(subs.subscriptions(id).budget, MAX_RUNS * RUN_FEE, "a missed run costs nothing");
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _due(1)));
        subs.trigger(id);

        // Runs 1 and 2 missed, run 3 within its tolerance: one trigger records both and starts run 3.
        vm.warp(_due(3) + 5 minutes);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 1, 2);
        (Request memory r, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(3), input));
        (, uint64 runIndex,) = subs.runOf(r.requestId);
        assertEq(runIndex, 3);
        assertEq(subs.subscriptions(id).nextRun, 4);
    }

    function test_trigger_runLateCatchesUpOneRunPerTrigger() public {
        // A tolerance longer than the interval: after an outage every run within it still runs, in order.
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, 3 hours, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_due(3) + 30 minutes);
        // Run 0 is 3h30 late: missed. Runs 1, 2, 3 run late, one trigger each; run 4 is not due.
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 0, 1);
        for (uint64 k = 1; k <= 3; ++k) {
            (Request memory r, bytes memory requestInput) = _triggerWithInput(id);
            assertEq(requestInput, abi.encode(k, input));
            _fulfil(r, 0, OUTPUT);
            assertEq(runConsumer.lastRunIndex(), k);
        }
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _due(4)));
        subs.trigger(id);
        assertEq(runConsumer.calls(), 3);
    }

    function test_trigger_skipStartsOnlyTheLatestDueRun() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.Skip, 3 hours, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_due(3) + 30 minutes);
        // Runs 0 to 2 are within a 3h tolerance, but Skip starts only the latest due run.
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 0, 3);
        (, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(3), input));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _due(4)));
        subs.trigger(id);
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
    }

    function test_trigger_skipRecordsTheLatestRunMissedPastItsTolerance() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.Skip, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_due(0));
        _trigger(id);
        vm.warp(_due(4) + TOLERANCE + 1);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 1, 4);
        assertEq(subs.trigger(id), bytes32(0));
        assertEq(subs.subscriptions(id).nextRun, 5);
        vm.warp(_due(5));
        (, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(5), input));
    }

    function test_trigger_missesAreBoundedWhateverTheirNumber() public {
        // A one-second interval left alone for a year: ~31.5M runs missed, recorded in one event.
        vm.prank(subscriber);
        uint256 id = subs.create{value: RUN_FEE}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, 1, type(uint64).max, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        vm.warp(START + 365 days);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 0, 365 days);
        uint256 before = gasleft();
        _trigger(id);
        assertLt(before - gasleft(), 300_000);
        assertEq(subs.subscriptions(id).nextRun, 365 days + 1);
    }

    function test_trigger_allRemainingRunsMissedFinishesTheSubscription() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, 3, 3 * RUN_FEE);
        vm.warp(_due(0));
        _trigger(id);
        vm.warp(_due(10));
        (uint64 next, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(next, 3);
        assertEq(dueAt, type(uint256).max);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 1, 2);
        assertEq(subs.trigger(id), bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionFinished.selector, id));
        subs.trigger(id);
        assertEq(subs.subscriptions(id).budget, 2 * RUN_FEE);
    }

    function test_trigger_startAtInThePastMissesRunsBeyondTolerance() public {
        vm.warp(START + 10 hours + 1 minutes);
        vm.prank(subscriber);
        uint256 id = subs.create{value: RUN_FEE}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 20, TOLERANCE, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunsMissed(id, 0, 10);
        (, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(10), input));
    }

    /// @dev `nextRunAt` agrees with a step-by-step model of both policies, and `trigger` does what it says.
    function testFuzz_nextRunAt_matchesAStepByStepModel(
        uint64 interval,
        uint64 tolerance,
        bool skip,
        uint64 maxRuns,
        uint256 elapsed
    ) public {
        interval = uint64(bound(interval, 1, 1 days));
        tolerance = uint64(bound(tolerance, 0, 3 days));
        maxRuns = uint64(bound(maxRuns, 1, 40));
        uint256 time = START - 100 + bound(elapsed, 0, 45 * uint256(interval) + 3 days);
        uint256 id = _createSchedule(interval, tolerance, skip, maxRuns);
        vm.warp(time);

        uint256 expected = _modelNextRun(interval, tolerance, skip, maxRuns, time);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, expected);
        assertEq(dueAt, expected == maxRuns ? type(uint256).max : START + expected * interval);
        _checkTrigger(id, runIndex, dueAt);
    }

    function _createSchedule(uint64 interval, uint64 tolerance, bool skip, uint64 maxRuns) internal returns (uint256) {
        ISubscriptions.MissedPolicy policy =
            skip ? ISubscriptions.MissedPolicy.Skip : ISubscriptions.MissedPolicy.RunLate;
        vm.prank(subscriber);
        return subs.create{value: RUN_FEE}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, interval, maxRuns, tolerance, policy),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
    }

    /// @dev The model: the first run, in order, that is not yet due, or due and still allowed to start.
    function _modelNextRun(uint256 interval, uint256 tolerance, bool skip, uint256 maxRuns, uint256 time)
        internal
        pure
        returns (uint256)
    {
        for (uint256 k; k < maxRuns; ++k) {
            uint256 due = START + k * interval;
            bool closed = time > due + tolerance || (skip && time >= due + interval);
            if (!closed) return k;
        }
        return maxRuns;
    }

    /// @dev `trigger` now refuses, only records misses, or starts run `runIndex`, as `nextRunAt` says.
    function _checkTrigger(uint256 id, uint64 runIndex, uint256 dueAt) internal {
        if (runIndex == 0 && dueAt > block.timestamp) {
            vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, dueAt));
            subs.trigger(id);
        } else if (dueAt > block.timestamp) {
            assertEq(subs.trigger(id), bytes32(0));
            assertEq(subs.subscriptions(id).nextRun, runIndex);
        } else {
            bytes32 requestId = subs.trigger(id);
            (, uint64 started,) = subs.runOf(requestId);
            assertEq(started, runIndex);
            assertEq(subs.subscriptions(id).nextRun, runIndex + 1);
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         SETTLEMENT                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_onResponse_revertingConsumerDoesNotBlockSettlement() public {
        uint256 id = _create();
        runConsumer.setMode(RunConsumer.Mode.Revert);
        vm.warp(_due(0));
        Request memory r = _trigger(id);

        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunSettled(id, 0, r.requestId, 0, false);
        // The Coprocessor sees this contract's callback succeed.
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestFulfilled(r.requestId, enclave, 0, true);
        _fulfil(r, 0, OUTPUT);

        (uint256 runId,,) = subs.runOf(r.requestId);
        assertEq(runId, 0);
        // The subscription goes on.
        runConsumer.setMode(RunConsumer.Mode.Store);
        vm.warp(_due(1));
        _fulfil(_trigger(id), 0, OUTPUT);
        assertEq(runConsumer.lastRunIndex(), 1);
    }

    function test_onResponse_gasBurningConsumerGetsExactlyItsGasAndSettles() public {
        uint256 id = _create();
        runConsumer.setMode(RunConsumer.Mode.BurnGas);
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunSettled(id, 0, r.requestId, 0, false);
        _fulfil(r, 0, OUTPUT);
    }

    function test_onResponse_outputOverTheCapSettlesWithoutTheConsumer() public {
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 64 * 1024, 2_000_000, 7 days, MIN_FEE));
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunSettled(id, 0, r.requestId, 0, false);
        _fulfil(r, 0, new bytes(64 * 1024));
        assertEq(runConsumer.calls(), 0);
        (uint256 runId,,) = subs.runOf(r.requestId);
        assertEq(runId, 0);
    }

    function test_onResponse_errorStatusCreditsTheAuthorFeeBack() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunRefunded(id, 0, r.requestId, AUTHOR_FEE);
        _fulfil(r, 2, "bad input");
        assertEq(runConsumer.lastStatus(), 2);
        assertEq(runConsumer.lastOutput(), "bad input");
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE + AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(address(subs)), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(author), 0);
        _assertSolvent();
    }

    function test_onCoprocessorResponse_revertsForAnyoneButTheCoprocessor() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorClient.OnlyCoprocessor.selector, stranger));
        vm.prank(stranger);
        subs.onCoprocessorResponse(bytes32(uint256(1)), 0, "");
    }

    function test_receive_refusesEtherFromAnyoneButTheCoprocessor() public {
        vm.deal(stranger, 1 ether);
        vm.prank(stranger);
        (bool ok,) = address(subs).call{value: 1 ether}("");
        assertFalse(ok);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          RECLAIM                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_reclaim_cancelsAnExpiredRunAndCreditsItsFee() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.warp(r.deadline + 1);

        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunRefunded(id, 0, r.requestId, uint96(RUN_FEE));
        vm.prank(stranger);
        subs.reclaim(r);

        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Cancelled));
        assertEq(subs.subscriptions(id).budget, MAX_RUNS * RUN_FEE);
        assertEq(coprocessor.balanceOf(address(subs)), RUN_FEE);
        (uint256 runId,,) = subs.runOf(r.requestId);
        assertEq(runId, 0);
        _assertSolvent();
    }

    function test_reclaim_creditsARunSomeoneElseCancelled() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.warp(r.deadline + 1);
        vm.prank(stranger);
        coprocessor.cancel(r);
        subs.reclaim(r);
        assertEq(subs.subscriptions(id).budget, MAX_RUNS * RUN_FEE);
    }

    function test_reclaim_revertsBeforeTheDeadline() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.warp(r.deadline);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.DeadlineNotReached.selector, r.requestId, r.deadline));
        subs.reclaim(r);
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
    }

    function test_reclaim_revertsForAForgedRequest() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.warp(r.deadline + 1);
        r.fee = uint96(RUN_FEE * 10);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        subs.reclaim(r);
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
    }

    function test_reclaim_creditsOnceOnly() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.warp(r.deadline + 1);
        subs.reclaim(r);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.UnknownRun.selector, r.requestId));
        subs.reclaim(r);
        assertEq(subs.subscriptions(id).budget, MAX_RUNS * RUN_FEE);
    }

    function test_reclaim_revertsForASettledRun() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        _fulfil(r, 0, OUTPUT);
        vm.warp(r.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.UnknownRun.selector, r.requestId));
        subs.reclaim(r);
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
    }

    function test_reclaim_refundedEtherPaysTheNextRun() public {
        // A budget for one run: reclaimed, its fee (credited at the Coprocessor) pays the next run.
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, RUN_FEE);
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        assertEq(address(subs).balance, 0);
        vm.warp(r.deadline + 1);
        subs.reclaim(r);
        vm.warp(_due(1));
        Request memory r1 = _trigger(id);
        assertEq(r1.fee, RUN_FEE);
        assertEq(coprocessor.balanceOf(address(subs)), 0);
        assertEq(address(subs).balance, 0);
        assertEq(subs.subscriptions(id).budget, 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     CANCEL, WITHDRAW                       */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_cancel_refundsTheRemainingBudgetExactly() public {
        uint256 id = _create();
        vm.warp(_due(0));
        _fulfil(_trigger(id), 0, OUTPUT);
        vm.warp(_due(1));
        _fulfil(_trigger(id), 0, OUTPUT);

        uint256 before = subscriber.balance;
        uint96 remaining = uint96((MAX_RUNS - 2) * RUN_FEE);
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.SubscriptionCancelled(id, remaining);
        vm.prank(subscriber);
        subs.cancel(id);

        assertEq(subscriber.balance, before + remaining);
        assertEq(address(subs).balance, 0);
        assertEq(subs.subscriptions(id).budget, 0);
        assertTrue(subs.subscriptions(id).cancelled);
    }

    function test_cancel_revertsForAnyoneButTheOwnerAndTwice() public {
        uint256 id = _create();
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.NotOwner.selector, id, stranger));
        vm.prank(stranger);
        subs.cancel(id);
        vm.prank(subscriber);
        subs.cancel(id);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionIsCancelled.selector, id));
        vm.prank(subscriber);
        subs.cancel(id);
    }

    function test_cancel_runInFlightStillSettles() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.prank(subscriber);
        subs.cancel(id);
        _fulfil(r, 0, OUTPUT);
        assertEq(runConsumer.lastRunIndex(), 0);
        assertEq(runConsumer.lastOutput(), OUTPUT);
    }

    /// @dev Nothing is lost: the budget at cancel, then the refunds of runs in flight (an expired run's whole fee,
    /// a failed run's author fee), reach the owner to the wei, and this contract ends with nothing.
    function test_cancel_laterRefundsReachTheOwnerThroughWithdraw() public {
        uint256 id = _create();
        vm.warp(_due(0));
        Request memory expired = _trigger(id);
        vm.warp(_due(1));
        Request memory failed = _trigger(id);

        uint256 before = subscriber.balance;
        vm.prank(subscriber);
        subs.cancel(id);
        assertEq(subscriber.balance, before + (MAX_RUNS - 2) * RUN_FEE);

        _fulfil(failed, 1, "template error");
        vm.warp(expired.deadline + 1);
        subs.reclaim(expired);
        assertEq(subs.subscriptions(id).budget, RUN_FEE + AUTHOR_FEE);

        address payable to = payable(makeAddr("refunds"));
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.Withdrawn(id, to, uint96(RUN_FEE + AUTHOR_FEE));
        vm.prank(subscriber);
        subs.withdraw(id, to);
        assertEq(to.balance, RUN_FEE + AUTHOR_FEE);
        assertEq(subs.subscriptions(id).budget, 0);
        assertEq(address(subs).balance, 0);
        assertEq(coprocessor.balanceOf(address(subs)), 0);
    }

    function test_cancel_pullsCreditedRefundsFromTheCoprocessor() public {
        uint256 id = _create(ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, RUN_FEE);
        vm.warp(_due(0));
        Request memory r = _trigger(id);
        vm.warp(r.deadline + 1);
        subs.reclaim(r);
        uint256 before = subscriber.balance;
        vm.prank(subscriber);
        subs.cancel(id);
        assertEq(subscriber.balance, before + RUN_FEE);
        assertEq(coprocessor.balanceOf(address(subs)), 0);
    }

    function test_cancel_revertsWhenTheOwnerRefusesEther() public {
        RefusingOwner refuser = new RefusingOwner();
        vm.deal(address(refuser), 1 ether);
        vm.prank(address(refuser));
        uint256 id = subs.create{value: 1 ether}(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        vm.expectRevert(ISubscriptions.TransferFailed.selector);
        vm.prank(address(refuser));
        subs.cancel(id);
    }

    function test_withdraw_revertsUnlessCancelledAndByTheOwner() public {
        uint256 id = _create();
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionNotCancelled.selector, id));
        vm.prank(subscriber);
        subs.withdraw(id, payable(subscriber));
        vm.prank(subscriber);
        subs.cancel(id);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.NotOwner.selector, id, stranger));
        vm.prank(stranger);
        subs.withdraw(id, payable(stranger));
        // Nothing credited since: a no-op.
        vm.prank(subscriber);
        subs.withdraw(id, payable(subscriber));
    }

    function test_solvency_acrossSubscriptionsAndOutcomes() public {
        uint256 a = _create();
        uint256 b = _create(ISubscriptions.MissedPolicy.Skip, TOLERANCE, MAX_RUNS, 3 * RUN_FEE);
        vm.warp(_due(0));
        Request memory a0 = _trigger(a);
        Request memory b0 = _trigger(b);
        _fulfil(a0, 3, "timeout");
        vm.warp(_due(1));
        Request memory a1 = _trigger(a);
        _fulfil(_trigger(b), 0, OUTPUT);
        vm.warp(b0.deadline + 2 hours);
        subs.reclaim(b0);
        _assertSolvent();
        vm.prank(subscriber);
        subs.cancel(b);
        _assertSolvent();
        vm.warp(a1.deadline + 1);
        subs.reclaim(a1);
        _assertSolvent();
        vm.prank(subscriber);
        subs.cancel(a);
        assertEq(address(subs).balance + coprocessor.balanceOf(address(subs)), 0);
    }
}

/// @notice Subscriptions on cron schedules: create, the due rule, a run on each due time, missed due times under both
/// policies, `maxRuns`, no due time left, cancel; and `nextRunAt` against a step-by-step model.
contract SubscriptionsCronTest is SubscriptionsTestBase {
    /// @dev "0 9 * * 1-5": weekdays at 09:00 UTC (`_cronDue`).
    uint256 internal weekdays9 = CronSpecs.weekdaysAt9();

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           CREATE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_create_cronStoresTheSpecAndTheFirstDueTime() public {
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.SubscriptionCreated(
            1,
            subscriber,
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            START,
            0,
            weekdays9,
            MAX_RUNS,
            TOLERANCE,
            ISubscriptions.MissedPolicy.RunLate,
            CALLBACK_GAS,
            RUN_TIMEOUT,
            uint96(MAX_RUNS * RUN_FEE)
        );
        uint256 id =
            _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        ISubscriptions.Subscription memory s = subs.subscriptions(id);
        assertEq(s.cron, weekdays9);
        assertEq(s.interval, 0);
        assertEq(s.startAt, START);
        assertEq(s.nextDueAt, _cronDue(0));
        assertEq(s.nextRun, 0);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 0);
        assertEq(dueAt, _cronDue(0));
        // An interval subscription stores no due time and no spec.
        assertEq(subs.subscriptions(_create()).nextDueAt, 0);
    }

    function test_create_cronZeroStartAtMeansNow() public {
        uint256 everyMinute = CronLib.SPEC_BITS;
        vm.warp(START_TIME + 30); // 22:13:50
        vm.prank(subscriber);
        uint256 id = subs.create(
            address(runConsumer),
            TEMPLATE_ID,
            input,
            _cronSchedule(everyMinute, 0, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        assertEq(subs.subscriptions(id).startAt, START_TIME + 30);
        assertEq(subs.subscriptions(id).nextDueAt, START_TIME + 40, "the next whole minute");
    }

    function test_create_cronRevertsOnAnInvalidSpecOrSchedule() public {
        uint256 february30 = CronSpecs.spec(1, 1, CronSpecs.only(30), CronSpecs.only(2), CronSpecs.ANY_WEEKDAY);
        uint256 fridayFebruary29 = CronSpecs.spec(1, 1, CronSpecs.only(29), CronSpecs.only(2), CronSpecs.only(5));
        ISubscriptions.Schedule[7] memory bad = [
            _cronSchedule(weekdays9 | 1 << 60, START, 1, 0, ISubscriptions.MissedPolicy.RunLate), // minute 60
            _cronSchedule(weekdays9 | 1 << 255, START, 1, 0, ISubscriptions.MissedPolicy.RunLate), // outside the fields
            _cronSchedule(weekdays9 & ~CronLib.MINUTE_BITS, START, 1, 0, ISubscriptions.MissedPolicy.RunLate), // empty
            _cronSchedule(weekdays9, START, 0, 0, ISubscriptions.MissedPolicy.RunLate), // no run
            _cronSchedule(february30, START, 1, 0, ISubscriptions.MissedPolicy.RunLate), // never due
            // The next Friday February 29 (2036) is past the search window from 2023.
            _cronSchedule(fridayFebruary29, START, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            _cronSchedule(weekdays9, START, 1, 0, ISubscriptions.MissedPolicy.RunLate)
        ];
        bad[6].interval = INTERVAL; // both kinds at once
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(ISubscriptions.InvalidSchedule.selector);
            subs.create(address(runConsumer), TEMPLATE_ID, input, bad[i], CALLBACK_GAS, RUN_TIMEOUT);
        }
        assertEq(subs.subscriptionCount(), 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           RUNS                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_trigger_cronRevertsBeforeTheDueTime() public {
        uint256 id =
            _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _cronDue(0)));
        subs.trigger(id);
        vm.warp(_cronDue(0) - 1);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _cronDue(0)));
        subs.trigger(id);
        vm.warp(_cronDue(0));
        _trigger(id);
    }

    /// @dev A run on each due time, weekend skipped, each request carrying its run index; none twice.
    function test_trigger_cronRunsOnEachDueTime() public {
        uint256 id =
            _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        for (uint64 k; k < 7; ++k) {
            vm.warp(_cronDue(k));
            vm.expectEmit(true, true, false, true, address(subs));
            emit ISubscriptions.RunTriggered(id, k, bytes32(0), uint96(RUN_FEE));
            (Request memory r, bytes memory requestInput) = _triggerWithInput(id);
            assertEq(requestInput, abi.encode(k, input));
            _fulfil(r, 0, abi.encode(uint256(k)));
            assertEq(runConsumer.lastRunIndex(), k);

            (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
            assertEq(runIndex, k + 1);
            assertEq(dueAt, _cronDue(k + 1));
            assertEq(subs.subscriptions(id).nextDueAt, _cronDue(k + 1));
            // The same due time cannot run twice.
            vm.warp(_cronDue(k) + 1 minutes);
            vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _cronDue(k + 1)));
            subs.trigger(id);
        }
        assertEq(_cronDue(3) - _cronDue(2), 3 days, "Friday to Monday");
        assertEq(runConsumer.calls(), 7);
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 7) * RUN_FEE);
        _assertSolvent();
    }

    function test_trigger_cronRunLateStartsWithinItsTolerance() public {
        uint256 id =
            _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_cronDue(0) + TOLERANCE);
        vm.recordLogs();
        subs.trigger(id);
        assertEq(subs.subscriptions(id).nextRun, 1);
        assertEq(subs.subscriptions(id).nextDueAt, _cronDue(1));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            assertTrue(logs[i].topics[0] != ISubscriptions.DueTimesMissed.selector, "nothing missed");
        }
    }

    function test_trigger_cronRunLateRecordsDueTimesPastTheirTolerance() public {
        uint256 id =
            _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        // Wednesday and Thursday are past their tolerance, Friday within it: one event, and run 0 starts on Friday's.
        vm.warp(_cronDue(2) + 5 minutes);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 0);
        assertEq(dueAt, _cronDue(2));
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.DueTimesMissed(id, uint64(_cronDue(0)), uint64(_cronDue(2)));
        (, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(0), input));
        assertEq(subs.subscriptions(id).nextDueAt, _cronDue(3));

        // Monday's is past its tolerance and Tuesday's not due: the trigger only records, and nothing is paid.
        vm.warp(_cronDue(3) + TOLERANCE + 1);
        (runIndex, dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 1);
        assertEq(dueAt, _cronDue(4));
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.DueTimesMissed(id, uint64(_cronDue(3)), uint64(_cronDue(4)));
        assertEq(subs.trigger(id), bytes32(0));
        assertEq(subs.subscriptions(id).nextRun, 1, "the run index counts runs started");
        assertEq(subs.subscriptions(id).nextDueAt, _cronDue(4));
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _cronDue(4)));
        subs.trigger(id);

        vm.warp(_cronDue(4));
        (, requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(1), input));
    }

    function test_trigger_cronRunLateCatchesUpOneDueTimePerTrigger() public {
        // A tolerance of two days: after an outage every due time within it still runs, in order.
        uint256 id = _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, 2 days, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_cronDue(2) + 1 hours); // Friday 10:00: Wednesday's is past two days, Thursday's is not
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.DueTimesMissed(id, uint64(_cronDue(0)), uint64(_cronDue(1)));
        for (uint64 k; k < 2; ++k) {
            (Request memory r, bytes memory requestInput) = _triggerWithInput(id);
            assertEq(requestInput, abi.encode(k, input));
            _fulfil(r, 0, OUTPUT);
            assertEq(subs.subscriptions(id).nextDueAt, _cronDue(k + 2));
        }
        // Thursday's and Friday's ran (run indices 0 and 1); Monday's is not due.
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _cronDue(3)));
        subs.trigger(id);
        assertEq(runConsumer.calls(), 2);
    }

    function test_trigger_cronSkipStartsOnlyTheLatestDueTime() public {
        uint256 id = _createCron(weekdays9, ISubscriptions.MissedPolicy.Skip, 3 days, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_cronDue(3) + 1 hours);
        // Thursday's, Friday's are within three days, but Skip starts only Monday's.
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 0);
        assertEq(dueAt, _cronDue(3));
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.DueTimesMissed(id, uint64(_cronDue(0)), uint64(_cronDue(3)));
        (, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(0), input));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, _cronDue(4)));
        subs.trigger(id);
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
    }

    function test_trigger_cronSkipRecordsTheLatestDueTimeMissedPastItsTolerance() public {
        uint256 id = _createCron(weekdays9, ISubscriptions.MissedPolicy.Skip, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_cronDue(0));
        _trigger(id);
        vm.warp(_cronDue(3) + TOLERANCE + 1);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 1);
        assertEq(dueAt, _cronDue(4));
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.DueTimesMissed(id, uint64(_cronDue(1)), uint64(_cronDue(4)));
        assertEq(subs.trigger(id), bytes32(0));
        assertEq(subs.subscriptions(id).nextRun, 1);
        vm.warp(_cronDue(4));
        (, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(1), input));
    }

    function test_trigger_cronMaxRunsCountsRunsStarted() public {
        uint256 id = _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, 2, 5 * RUN_FEE);
        vm.warp(_cronDue(0) + TOLERANCE + 1);
        assertEq(subs.trigger(id), bytes32(0), "a missed due time uses no run");
        vm.warp(_cronDue(1));
        _trigger(id);
        vm.warp(_cronDue(2));
        _trigger(id);
        vm.warp(_cronDue(3));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionFinished.selector, id));
        subs.trigger(id);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 2);
        assertEq(dueAt, type(uint256).max);
        assertEq(subs.subscriptions(id).budget, 3 * RUN_FEE);
    }

    function test_trigger_cronWithNoDueTimeLeftIsFinished() public {
        // Friday February 29: 2036, then 2064, past the search window from 2036.
        uint256 spec = CronSpecs.spec(1, 1, CronSpecs.only(29), CronSpecs.only(2), CronSpecs.only(5));
        vm.warp(2082758400); // 2036-01-01
        vm.prank(subscriber);
        uint256 id = subs.create{value: 2 * RUN_FEE}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _cronSchedule(spec, 0, MAX_RUNS, TOLERANCE, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        assertEq(subs.subscriptions(id).nextDueAt, 2087856000); // 2036-02-29
        vm.warp(2087856000);
        _trigger(id);
        assertEq(subs.subscriptions(id).nextDueAt, type(uint64).max);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, 1);
        assertEq(dueAt, type(uint256).max);
        vm.warp(2087856000 + 365 days);
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionFinished.selector, id));
        subs.trigger(id);
    }

    function test_trigger_cronBudgetTooSmallRecordsNothing() public {
        uint256 id = _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, RUN_FEE / 2);
        vm.warp(_cronDue(1));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.InsufficientBudget.selector, id, RUN_FEE / 2, RUN_FEE));
        subs.trigger(id);
        assertEq(subs.subscriptions(id).nextDueAt, _cronDue(0), "nothing recorded");
        subs.fund{value: RUN_FEE / 2}(id);
        (, bytes memory requestInput) = _triggerWithInput(id);
        assertEq(requestInput, abi.encode(uint64(0), input));
        assertEq(subs.subscriptions(id).nextDueAt, _cronDue(2));
    }

    function test_cancel_cronRefundsTheRemainingBudget() public {
        uint256 id =
            _createCron(weekdays9, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(_cronDue(0));
        Request memory r = _trigger(id);
        uint256 before = subscriber.balance;
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.SubscriptionCancelled(id, uint96((MAX_RUNS - 1) * RUN_FEE));
        vm.prank(subscriber);
        subs.cancel(id);
        assertEq(subscriber.balance, before + (MAX_RUNS - 1) * RUN_FEE);
        vm.warp(_cronDue(1));
        vm.expectRevert(abi.encodeWithSelector(ISubscriptions.SubscriptionIsCancelled.selector, id));
        subs.trigger(id);
        (, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(dueAt, type(uint256).max);
        // The run in flight still settles.
        _fulfil(r, 0, OUTPUT);
        assertEq(runConsumer.lastRunIndex(), 0);
        _assertSolvent();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           MODEL                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev After a first trigger at a random time, `nextRunAt` agrees with a model that walks the due times one by
    /// one under either policy, and `trigger` then does what it says.
    function testFuzz_nextRunAt_cronMatchesAStepByStepModel(
        uint256 seed,
        uint64 tolerance,
        bool skip,
        uint256 firstAt,
        uint256 elapsed
    ) public {
        // "m */h * * *" or "m h * * w": due times a few hours or days apart.
        uint256 spec = seed % 2 == 0
            ? CronSpecs.spec(
                CronSpecs.only(seed % 60),
                CronSpecs.range(0, 23, 1 + (seed >> 8) % 8),
                CronSpecs.ANY_DAY,
                CronSpecs.ANY_MONTH,
                CronSpecs.ANY_WEEKDAY
            )
            : CronSpecs.spec(
                CronSpecs.only(seed % 60),
                CronSpecs.only((seed >> 8) % 24),
                CronSpecs.ANY_DAY,
                CronSpecs.ANY_MONTH,
                (seed >> 16) % 127 + 1
            );
        tolerance = uint64(bound(tolerance, 0, 3 days));
        ISubscriptions.MissedPolicy policy =
            skip ? ISubscriptions.MissedPolicy.Skip : ISubscriptions.MissedPolicy.RunLate;
        uint256 id = _createCron(spec, policy, tolerance, 40, 40 * RUN_FEE);

        // A first trigger at a random time (it may start a run, only record misses, or be refused)...
        vm.warp(START + bound(firstAt, 0, 10 days));
        _checkCronTrigger(id, spec, tolerance, skip);
        // ...then the state it left, at a later time.
        vm.warp(block.timestamp + bound(elapsed, 0, 10 days));
        _checkCronTrigger(id, spec, tolerance, skip);
    }

    /// @dev `nextRunAt` equals the model's due time from the stored one, and `trigger` refuses, records or starts
    /// accordingly.
    function _checkCronTrigger(uint256 id, uint256 spec, uint256 tolerance, bool skip) internal {
        ISubscriptions.Subscription memory s = subs.subscriptions(id);
        uint256 expected = _modelDueAt(spec, s.nextDueAt, tolerance, skip, block.timestamp);
        (uint64 runIndex, uint256 dueAt) = subs.nextRunAt(id);
        assertEq(runIndex, s.nextRun);
        assertEq(dueAt, expected);
        if (dueAt == s.nextDueAt && dueAt > block.timestamp) {
            vm.expectRevert(abi.encodeWithSelector(ISubscriptions.RunNotDue.selector, id, dueAt));
            subs.trigger(id);
        } else if (dueAt > block.timestamp) {
            assertEq(subs.trigger(id), bytes32(0));
            assertEq(subs.subscriptions(id).nextDueAt, dueAt);
            assertEq(subs.subscriptions(id).nextRun, runIndex);
        } else {
            bytes32 requestId = subs.trigger(id);
            (, uint64 started,) = subs.runOf(requestId);
            assertEq(started, runIndex);
            assertEq(subs.subscriptions(id).nextRun, runIndex + 1);
            assertEq(subs.subscriptions(id).nextDueAt, CronLib.next(spec, dueAt + 60));
        }
    }

    /// @dev The model: walk the due times from `stored`; RunLate takes the first not past its tolerance, Skip the
    /// latest at or before `time` if within its tolerance, else the first after `time`.
    function _modelDueAt(uint256 spec, uint256 stored, uint256 tolerance, bool skip, uint256 time)
        internal
        pure
        returns (uint256)
    {
        uint256 latest;
        for (uint256 d = stored; d != CronLib.NO_NEXT; d = CronLib.next(spec, d + 60)) {
            if (d > time) return latest != 0 && time - latest <= tolerance ? latest : d;
            if (!skip && time - d <= tolerance) return d;
            if (skip) latest = d;
        }
        return type(uint256).max;
    }
}

/// @notice Creates subscriptions and refuses ether.
contract RefusingOwner {
    receive() external payable {
        revert("no ether");
    }
}

/// @notice Gas snapshots of `create`, `trigger`, a run's `fulfill` and `reclaim`, written to
/// `snapshots/Subscriptions.json`.
/// @dev Note: as in `CoprocessorGasTest`, everything is prepared in `setUp`, its own transaction, so each measured
/// call starts with cold accounts and storage. Steady state: one subscription exists and its run 0 was answered
/// (counters, the payee's and author's balances non-zero); run 1 is in flight with its signed response ready
/// (run 2 falls due in `test_trigger_gas`). The subscription's input is `abi.encode("ETH/USD")` (96 bytes: three slots). Figures are the
/// callee frame's gas (no 21k intrinsic, no calldata cost); `fulfill` includes the consumer storing the 32-byte
/// output.
contract SubscriptionsGasTest is SubscriptionsTestBase {
    uint256 internal id;
    Request internal inFlight;
    bytes internal inFlightSig;

    function setUp() public override {
        super.setUp();
        id = _create();
        vm.warp(_due(0));
        // Another output than run 1's, so the consumer's stored output changes as it would.
        _fulfil(_trigger(id), 0, abi.encode(uint256(1)));
        vm.warp(_due(1));
        inFlight = _trigger(id);
        inFlightSig = _sign(enclaveKey, _digest(inFlight, 0, OUTPUT));
    }

    function test_create_gas() public {
        vm.prank(subscriber);
        subs.create{value: MAX_RUNS * RUN_FEE}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, MAX_RUNS, TOLERANCE, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        vm.snapshotGasLastCall("Subscriptions", "create");
    }

    function test_trigger_gas() public {
        vm.warp(_due(2));
        subs.trigger(id);
        vm.snapshotGasLastCall("Subscriptions", "trigger");
        assertEq(subs.subscriptions(id).nextRun, 3);
    }

    function test_fulfill_gasOfARun() public {
        coprocessor.fulfill(_batch(Fulfillment(inFlight, 0, OUTPUT, inFlightSig)));
        vm.snapshotGasLastCall("Subscriptions", "fulfill of a run (Coprocessor.fulfill, consumer stores the output)");
        assertEq(runConsumer.lastRunIndex(), 1);
    }

    function test_reclaim_gas() public {
        vm.warp(inFlight.deadline + 1);
        subs.reclaim(inFlight);
        vm.snapshotGasLastCall("Subscriptions", "reclaim (cancels the expired run at the Coprocessor)");
        assertEq(subs.subscriptions(id).budget, (MAX_RUNS - 1) * RUN_FEE);
    }
}

/// @notice Gas of `create` and `trigger` for a cron schedule, "0 * * * *" (hourly, the interval test's cadence), in
/// the same steady state as `SubscriptionsGasTest`: run 0 answered, run 1 in flight, run 2 triggered on its due time;
/// and of `CronLib.next` for typical specs. Every row of the group is written from this file.
contract SubscriptionsCronGasTest is SubscriptionsTestBase {
    /// @dev From `START` (2023-11-14 23:13:20), "0 * * * *" is first due at 2023-11-15 00:00.
    uint256 internal constant FIRST_DUE = 1_700_006_400;

    uint256 internal hourly = CronSpecs.spec(
        CronSpecs.only(0), CronSpecs.ANY_HOUR, CronSpecs.ANY_DAY, CronSpecs.ANY_MONTH, CronSpecs.ANY_WEEKDAY
    );
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = _createCron(hourly, ISubscriptions.MissedPolicy.RunLate, TOLERANCE, MAX_RUNS, MAX_RUNS * RUN_FEE);
        vm.warp(FIRST_DUE);
        _fulfil(_trigger(id), 0, abi.encode(uint256(1)));
        vm.warp(FIRST_DUE + 1 hours);
        _trigger(id);
    }

    function test_create_gasOfACronSchedule() public {
        vm.prank(subscriber);
        subs.create{value: MAX_RUNS * RUN_FEE}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _cronSchedule(hourly, START, MAX_RUNS, TOLERANCE, ISubscriptions.MissedPolicy.RunLate),
            CALLBACK_GAS,
            RUN_TIMEOUT
        );
        vm.snapshotGasLastCall("Subscriptions", "create (cron 0 * * * *)");
    }

    function test_trigger_gasOfACronSchedule() public {
        vm.warp(FIRST_DUE + 2 hours);
        subs.trigger(id);
        vm.snapshotGasLastCall("Subscriptions", "trigger (cron 0 * * * *)");
        assertEq(subs.subscriptions(id).nextRun, 3);
        assertEq(subs.subscriptions(id).nextDueAt, FIRST_DUE + 3 hours);
    }

    /// @dev Gas of `CronLib.next` (the harness's external call) for typical specs.
    function test_cronLibNext_gas() public {
        CronLibHarness harness = new CronLibHarness();
        harness.next(CronSpecs.every5Minutes(), 1704067201); // 2024-01-01 00:00:01 -> 00:05
        vm.snapshotGasLastCall("Subscriptions", "CronLib.next: */5 * * * *, 00:00:01 -> 00:05");
        harness.next(CronSpecs.weekdaysAt9(), 1709283601); // Friday 2024-03-01 09:00:01 -> Monday 09:00
        vm.snapshotGasLastCall("Subscriptions", "CronLib.next: 0 9 * * 1-5, Friday 09:00:01 -> Monday");
        harness.next(CronSpecs.monthly(), 1706702400); // 2024-01-31 12:00 -> 2024-02-01
        vm.snapshotGasLastCall("Subscriptions", "CronLib.next: 0 0 1 * *, January 31st -> February 1st");
        harness.next(CronSpecs.leapDay(), 1709251200); // 2024-03-01 -> 2028-02-29
        vm.snapshotGasLastCall("Subscriptions", "CronLib.next: 0 0 29 2 *, 2024-03-01 -> 2028-02-29");
        harness.next(CronSpecs.leapDay(), 3981312001); // 2096-02-29 00:00:01 -> 2104-02-29
        vm.snapshotGasLastCall("Subscriptions", "CronLib.next: 0 0 29 2 *, 2096-02-29 -> 2104-02-29 (worst leap day)");
        uint256 never = CronSpecs.spec(1, 1, CronSpecs.only(31), 1 << 2 | 1 << 4 | 1 << 6 | 1 << 9 | 1 << 11, 1);
        assertEq(harness.next(never, 1704067200), CronLib.NO_NEXT);
        vm.snapshotGasLastCall("Subscriptions", "CronLib.next: 0 0 31 2,4,6,9,11 0, none in the whole window");
    }
}

/// @notice What `CALLBACK_OVERHEAD` must cover, measured from cold storage as a real `fulfill` meets it: the run is
/// triggered in `setUp` (its own transaction). The worst case: an error status (the author fee is looked up in the
/// TemplateRegistry and credited), a `MAX_OUTPUT_BYTES` output, and a large callback gas (its 1/64 is kept back).
contract SubscriptionsCallbackGasTest is SubscriptionsTestBase {
    uint32 internal constant LARGE_CALLBACK_GAS = 1_900_000;

    uint256 internal id;
    Request internal run;
    bytes internal worstOutput;

    function setUp() public override {
        super.setUp();
        vm.prank(subscriber);
        id = subs.create{value: RUN_FEE}(
            address(runConsumer),
            PAID_TEMPLATE_ID,
            input,
            _schedule(START, INTERVAL, 1, 0, ISubscriptions.MissedPolicy.RunLate),
            LARGE_CALLBACK_GAS,
            RUN_TIMEOUT
        );
        runConsumer.setMode(RunConsumer.Mode.Probe);
        vm.warp(_due(0));
        run = _trigger(id);
        worstOutput = new bytes(subs.MAX_OUTPUT_BYTES());
        worstOutput[0] = 0x01;
    }

    function test_onResponse_consumerGetsItsWholeGasInTheWorstCase() public {
        vm.expectEmit(true, true, true, true, address(subs));
        emit ISubscriptions.RunSettled(id, 0, run.requestId, 1, true);
        _fulfil(run, 1, worstOutput);
        assertEq(runConsumer.calls(), 1);
        // All of it but the consumer's own dispatch before its first statement.
        assertLe(runConsumer.gasAtEntry(), LARGE_CALLBACK_GAS);
        assertGt(runConsumer.gasAtEntry(), LARGE_CALLBACK_GAS - 1_000);
        assertEq(subs.subscriptions(id).budget, AUTHOR_FEE);
    }

    /// @dev The least callback gas with which the worst case still reaches the consumer, found by bisection (each
    /// try from the same cold state): `CALLBACK_OVERHEAD` leaves a margin of at least `MARGIN` over it.
    function test_onResponse_overheadLeavesAMargin() public {
        uint256 full = _requestGas(LARGE_CALLBACK_GAS);
        uint256 low = LARGE_CALLBACK_GAS;
        uint256 high = full;
        assertTrue(_reachesConsumer(high));
        while (high - low > 1) {
            uint256 mid = (low + high) / 2;
            if (_reachesConsumer(mid)) high = mid;
            else low = mid;
        }
        emit log_named_uint("least callback gas reaching the consumer", high);
        emit log_named_uint("unused CALLBACK_OVERHEAD in the worst case", full - high);
        assertGe(full - high, 20_000);
    }

    /// @dev Whether this contract, given `gas` for its callback, calls the consumer in the worst case.
    function _reachesConsumer(uint256 gas) internal returns (bool reached) {
        uint256 snapshot = vm.snapshotState();
        vm.prank(address(coprocessor));
        (bool ok,) =
            address(subs).call{gas: gas}(abi.encodeCall(subs.onCoprocessorResponse, (run.requestId, 1, worstOutput)));
        reached = ok && runConsumer.calls() == 1;
        vm.revertToState(snapshot);
    }
}
