// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Coprocessor} from "./Coprocessor.sol";
import {ForwardingClient} from "./ForwardingClient.sol";
import {ICoprocessor} from "./interfaces/ICoprocessor.sol";
import {ISubscriptionConsumer} from "./interfaces/ISubscriptionConsumer.sol";
import {ISubscriptions} from "./interfaces/ISubscriptions.sol";
import {ITemplateRegistry} from "./interfaces/ITemplateRegistry.sol";
import {CronLib} from "./libraries/CronLib.sol";
import {Request, Status} from "./libraries/RequestLib.sol";

/// @notice Scheduled jobs paid up front, run as ordinary Coprocessor requests made by this contract.
/// @dev Note: where the ether is. Budgets are held here; a run's fee goes to the Coprocessor with its request.
/// The Coprocessor credits refunds to this contract (the consumer of every run), never pushes them: the whole fee
/// of a cancelled run, the author fee of a run answered with an error status. Each is attributed to its
/// subscription's budget as it is known (`reclaim`, `_onResponse`), while the ether stays credited at the
/// Coprocessor until this contract needs it: `ForwardingClient._ensureBalance` withdraws it all before a payment
/// this contract's own balance cannot cover. So `address(this).balance + coprocessor.balanceOf(this)` is always
/// at least the sum of the budgets (tested).
contract Subscriptions is ISubscriptions, ForwardingClient {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev An unsettled run, one slot: which subscription, which run, what fee the request paid.
    struct Run {
        uint96 subscriptionId;
        uint64 runIndex;
        uint96 fee;
    }

    /// @dev A cron schedule's `nextDueAt` once `CronLib` finds no due time left (never a minute-aligned time).
    uint64 private constant _NO_DUE_TIME = type(uint64).max;

    /// @inheritdoc ISubscriptions
    /// @dev Covers, in the worst case (cold storage, an error status whose author fee is looked up and credited
    /// back, a `MAX_OUTPUT_BYTES` output), everything `_onResponse` spends besides the consumer's own gas and the
    /// 1/64 it must keep: about 33k gas, so over 20k are spare (tested). Gas asked for but unused costs nobody.
    uint32 public constant CALLBACK_OVERHEAD = 60_000;

    /// @inheritdoc ISubscriptions
    uint256 public constant MAX_OUTPUT_BYTES = 16 * 1024;

    /// @inheritdoc ISubscriptions
    ITemplateRegistry public immutable templateRegistry;

    /// @inheritdoc ISubscriptions
    uint256 public subscriptionCount;

    mapping(uint256 id => Subscription) private _subscriptions;

    /// @dev requestId => the run it carries, deleted when the run settles or is reclaimed.
    mapping(bytes32 requestId => Run) private _runs;

    constructor(ICoprocessor coprocessor_) ForwardingClient(coprocessor_) {
        templateRegistry = Coprocessor(address(coprocessor_)).templateRegistry();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         SUBSCRIBE                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ISubscriptions
    function create(
        address consumer,
        bytes32 templateId,
        bytes calldata input,
        Schedule calldata schedule,
        uint32 callbackGas,
        uint64 timeout
    ) external payable returns (uint256 id) {
        if (consumer == address(0)) revert InvalidConsumer();
        uint64 startAt = schedule.startAt == 0 ? uint64(block.timestamp) : schedule.startAt;
        uint256 cron = schedule.cron;
        uint64 nextDueAt;
        if (cron == 0) {
            if (schedule.interval == 0 || schedule.maxRuns == 0) revert InvalidSchedule();
        } else {
            // `CronLib.next` finds no due time for an invalid spec either.
            if (schedule.interval != 0 || schedule.maxRuns == 0) revert InvalidSchedule();
            nextDueAt = _cronNext(cron, startAt);
            if (nextDueAt == _NO_DUE_TIME) revert InvalidSchedule();
        }
        if (callbackGas == 0 || _forwardingGas(callbackGas, CALLBACK_OVERHEAD) > type(uint32).max) {
            revert InvalidCallbackGas(callbackGas);
        }
        if (msg.value > type(uint96).max) revert BudgetTooLarge(msg.value);

        id = ++subscriptionCount;
        _subscriptions[id] = Subscription({
            consumer: consumer,
            callbackGas: callbackGas,
            policy: schedule.policy,
            cancelled: false,
            owner: msg.sender,
            budget: uint96(msg.value),
            startAt: startAt,
            interval: schedule.interval,
            maxRuns: schedule.maxRuns,
            nextRun: 0,
            tolerance: schedule.tolerance,
            timeout: timeout,
            nextDueAt: nextDueAt,
            templateId: templateId,
            input: input,
            cron: cron
        });
        _emitCreated(id);
    }

    /// @inheritdoc ISubscriptions
    function fund(uint256 id) external payable {
        Subscription storage s = _existing(id);
        if (s.cancelled) revert SubscriptionIsCancelled(id);
        uint256 budget = s.budget + msg.value;
        if (budget > type(uint96).max) revert BudgetTooLarge(budget);
        s.budget = uint96(budget);
        emit Funded(id, msg.sender, msg.value, uint96(budget));
    }

    /// @inheritdoc ISubscriptions
    function cancel(uint256 id) external {
        Subscription storage s = _owned(id);
        if (s.cancelled) revert SubscriptionIsCancelled(id);
        uint96 refund = s.budget;
        s.cancelled = true;
        s.budget = 0;
        emit SubscriptionCancelled(id, refund);
        if (!_pay(payable(msg.sender), refund)) revert TransferFailed();
    }

    /// @inheritdoc ISubscriptions
    function withdraw(uint256 id, address payable to) external {
        Subscription storage s = _owned(id);
        if (!s.cancelled) revert SubscriptionNotCancelled(id);
        uint96 amount = s.budget;
        s.budget = 0;
        emit Withdrawn(id, to, amount);
        if (!_pay(to, amount)) revert TransferFailed();
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            RUNS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ISubscriptions
    function trigger(uint256 id) external returns (bytes32 requestId) {
        Subscription storage s = _existing(id);
        if (s.cancelled) revert SubscriptionIsCancelled(id);
        uint64 next = s.nextRun;
        uint64 maxRuns = s.maxRuns;
        if (next >= maxRuns) revert SubscriptionFinished(id);

        uint64 runIndex = next;
        if (s.interval != 0) {
            uint256 dueAt;
            (runIndex, dueAt) = _runAt(s, next, block.timestamp);
            if (runIndex == next && dueAt > block.timestamp) revert RunNotDue(id, dueAt);
            if (runIndex != next) emit RunsMissed(id, next, runIndex - next);
            if (dueAt > block.timestamp) {
                // Every due run is past its tolerance: they are recorded missed, and nothing starts.
                s.nextRun = runIndex;
                return bytes32(0);
            }
        } else if (!_advanceCron(s, id)) {
            // Cron: every due time up to now is past its tolerance, recorded missed; nothing starts.
            return bytes32(0);
        }

        bytes32 templateId = s.templateId;
        uint256 fee = coprocessor.requestFee(templateId);
        uint96 budget = s.budget;
        if (fee > budget) revert InsufficientBudget(id, budget, fee);
        s.nextRun = runIndex + 1;
        s.budget = budget - uint96(fee);

        _ensureBalance(fee);
        requestId = _request(
            templateId,
            abi.encode(runIndex, s.input),
            uint32(_forwardingGas(s.callbackGas, CALLBACK_OVERHEAD)),
            s.timeout,
            fee
        );
        _runs[requestId] = Run({subscriptionId: uint96(id), runIndex: runIndex, fee: uint96(fee)});
        emit RunTriggered(id, runIndex, requestId, uint96(fee));
    }

    /// @inheritdoc ISubscriptions
    function reclaim(Request calldata request) external {
        bytes32 requestId = request.requestId;
        Run memory run = _runs[requestId];
        if (run.subscriptionId == 0) revert UnknownRun(requestId);
        // Reverts unless `request` is the committed one and its deadline has passed.
        if (!_cancelExpired(request)) revert RunNotCancellable(requestId);
        delete _runs[requestId];
        _subscriptions[run.subscriptionId].budget += run.fee;
        emit RunRefunded(run.subscriptionId, run.runIndex, requestId, run.fee);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ISubscriptions
    function subscriptions(uint256 id) external view returns (Subscription memory) {
        return _subscriptions[id];
    }

    /// @inheritdoc ISubscriptions
    function nextRunAt(uint256 id) external view returns (uint64 runIndex, uint256 dueAt) {
        Subscription storage s = _subscriptions[id];
        runIndex = s.nextRun;
        if (s.cancelled || runIndex >= s.maxRuns) return (runIndex, type(uint256).max);
        if (s.interval != 0) return _runAt(s, runIndex, block.timestamp);
        uint64 stored = s.nextDueAt;
        if (stored == _NO_DUE_TIME) return (runIndex, type(uint256).max);
        uint64 cronDueAt = _cronDueAt(s, stored, block.timestamp);
        return (runIndex, cronDueAt == _NO_DUE_TIME ? type(uint256).max : cronDueAt);
    }

    /// @inheritdoc ISubscriptions
    function runOf(bytes32 requestId) external view returns (uint256 id, uint64 runIndex, uint96 fee) {
        Run memory run = _runs[requestId];
        return (run.subscriptionId, run.runIndex, run.fee);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     INTERNAL FUNCTIONS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Settles a run: forgets it, credits the author fee the Coprocessor refunded on an error status, then
    /// forwards the result to the consumer with exactly its callback gas. Never reverts (the Coprocessor would
    /// keep the request settled and this bookkeeping would be lost): `CALLBACK_OVERHEAD` covers everything but
    /// the consumer's call, a reverting consumer is caught, and an output over `MAX_OUTPUT_BYTES` (only if the
    /// Coprocessor's owner raised its cap) is not copied, so its memory cost cannot run this frame out of gas.
    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal override {
        Run memory run = _runs[requestId];
        uint256 id = run.subscriptionId;
        // Every request this contract makes is recorded, and the Coprocessor calls back once per request.
        if (id == 0) return;
        delete _runs[requestId];
        Subscription storage s = _subscriptions[id];

        // The Coprocessor credits the author fee back to the consumer (this contract) on an error status; a free
        // request has none. The registry never changes a template's author fee.
        if (status != uint8(Status.Ok) && run.fee != 0) {
            (, uint96 authorFee) = templateRegistry.authorOf(s.templateId);
            if (authorFee != 0) {
                s.budget += authorFee;
                emit RunRefunded(id, run.runIndex, requestId, authorFee);
            }
        }

        bool consumerSucceeded;
        if (output.length <= MAX_OUTPUT_BYTES) {
            consumerSucceeded = _forwardExactly(
                s.consumer,
                s.callbackGas,
                abi.encodeCall(ISubscriptionConsumer.onSubscriptionRun, (id, run.runIndex, status, output))
            );
        }
        emit RunSettled(id, run.runIndex, requestId, status, consumerSucceeded);
    }

    /// @dev The run a trigger at `time` starts or waits for, from `next` (not started, not missed, due by its
    /// index at `startAt + index * interval`), and its due time; (`maxRuns`, max) when no run is left. Runs in
    /// [`next`, returned index) are missed. Arithmetic, whatever the number of missed runs:
    /// - RunLate: the first run whose tolerance has not passed, `index >= ceil((time - tolerance - startAt) /
    ///   interval)`; it may be due already or not yet.
    /// - Skip: the latest due run, `floor((time - startAt) / interval)`, or the one after it if its tolerance has
    ///   passed (not yet due then).
    function _runAt(Subscription storage s, uint64 next, uint256 time)
        private
        view
        returns (uint64 runIndex, uint256 dueAt)
    {
        uint256 startAt = s.startAt;
        uint256 interval = s.interval;
        dueAt = startAt + next * interval;
        if (time <= dueAt) return (next, dueAt);

        uint256 tolerance = s.tolerance;
        uint256 index;
        if (s.policy == MissedPolicy.RunLate) {
            if (time - dueAt <= tolerance) return (next, dueAt);
            // time - tolerance > dueAt >= startAt, so the index exceeds `next`.
            index = (time - tolerance - startAt + interval - 1) / interval;
        } else {
            index = (time - startAt) / interval;
            if (time - (startAt + index * interval) > tolerance) ++index;
        }
        uint64 maxRuns = s.maxRuns;
        if (index >= maxRuns) return (maxRuns, type(uint256).max);
        return (uint64(index), startAt + index * interval);
    }

    /// @dev For a cron schedule: whether a trigger now starts run `nextRun`. Reverts `RunNotDue` when the stored next
    /// due time has not come, `SubscriptionFinished` when none is left; records the due times missed by now
    /// (`DueTimesMissed`), then stores the next due time: the one after the starting run's, or (nothing starts) the
    /// first one not missed. The caller's revert on a budget too small undoes it all.
    function _advanceCron(Subscription storage s, uint256 id) private returns (bool starts) {
        uint64 stored = s.nextDueAt;
        if (stored == _NO_DUE_TIME) revert SubscriptionFinished(id);
        uint64 dueAt = _cronDueAt(s, stored, block.timestamp);
        if (dueAt == stored && dueAt > block.timestamp) revert RunNotDue(id, dueAt);
        if (dueAt != stored) emit DueTimesMissed(id, stored, dueAt);
        starts = dueAt <= block.timestamp;
        s.nextDueAt = starts ? _cronNext(s.cron, uint256(dueAt) + 60) : dueAt;
    }

    /// @dev A cron schedule's due time a trigger at `time` starts or waits for, from the stored next one (`stored`,
    /// not started, not missed); due times in [`stored`, returned) are missed; `_NO_DUE_TIME` when none is left.
    /// - RunLate: the earliest due time not past its tolerance, `CronLib.next(cron, max(stored, time - tolerance))`;
    ///   it may be due already or not yet.
    /// - Skip: the latest due time, `CronLib.previous(cron, time)`, if it is not before `stored` and within its
    ///   tolerance; else the first due time after `time` (not yet due then).
    function _cronDueAt(Subscription storage s, uint64 stored, uint256 time) private view returns (uint64) {
        if (time <= stored) return stored;
        uint256 tolerance = s.tolerance;
        if (s.policy == MissedPolicy.RunLate) {
            if (time - stored <= tolerance) return stored;
            return _cronNext(s.cron, time - tolerance);
        }
        uint256 latest = CronLib.previous(s.cron, time);
        // `latest` is at most `time`, below 2**64 (zero, none, is below `stored`).
        if (latest >= stored && time - latest <= tolerance) return uint64(latest);
        return _cronNext(s.cron, time + 1);
    }

    /// @dev `CronLib.next` as a due time: its matches never exceed `type(uint64).max`; none is `_NO_DUE_TIME`.
    function _cronNext(uint256 cron, uint256 time) private pure returns (uint64) {
        uint256 found = CronLib.next(cron, time);
        return found == CronLib.NO_NEXT ? _NO_DUE_TIME : uint64(found);
    }

    function _existing(uint256 id) private view returns (Subscription storage s) {
        s = _subscriptions[id];
        if (s.owner == address(0)) revert UnknownSubscription(id);
    }

    function _owned(uint256 id) private view returns (Subscription storage s) {
        s = _existing(id);
        if (msg.sender != s.owner) revert NotOwner(id, msg.sender);
    }

    /// @dev Split out of `create` to keep the stack shallow.
    function _emitCreated(uint256 id) private {
        Subscription storage s = _subscriptions[id];
        emit SubscriptionCreated(
            id,
            s.owner,
            s.consumer,
            s.templateId,
            s.input,
            s.startAt,
            s.interval,
            s.cron,
            s.maxRuns,
            s.tolerance,
            s.policy,
            s.callbackGas,
            s.timeout,
            s.budget
        );
    }
}
