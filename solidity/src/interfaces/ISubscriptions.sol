// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITemplateRegistry} from "./ITemplateRegistry.sol";
import {Request} from "../libraries/RequestLib.sol";

/// @notice Scheduled jobs paid up front: a subscription runs a template on a fixed input every `interval` seconds
/// from `startAt`, or on the times of a cron schedule, at most `maxRuns` times, and delivers each result to its
/// consumer.
/// @dev Note: each run is an ordinary Coprocessor request made by this contract (the `consumer` of every request
/// is this contract), whose input is `abi.encode(uint64 runIndex, bytes input)`: the enclave signs a commitment
/// to the run index, so a response answers one run only. Anyone may `trigger` a due run (the node's scheduler
/// does); the schedule, not the caller, decides which run is due. Each run settles like any request: a response
/// is forwarded to the consumer (`ISubscriptionConsumer.onSubscriptionRun`), an expired one is cancelled and its
/// fee credited back to the budget (`reclaim`).
/// The chain checks the schedule, of either kind, and a run may start at most `tolerance` seconds late:
/// - interval (`cron` zero): run k (0-based) is due at `startAt + k * interval`;
/// - cron (`cron` a `CronLib` spec, `interval` zero): the due times are d_0 = `CronLib.next(cron, startAt)`, then
///   d_(i+1) = `CronLib.next(cron, d_i + 60)`, every matching minute in UTC. Matches are not counted in closed form,
///   so the run index is the number of runs started, and due times that pass without a run are recorded by time
///   (`DueTimesMissed`). Day of month and day of week must both match (APScheduler's semantics, not crontab's OR).
interface ISubscriptions {
    /// @notice What happens to runs not triggered in time.
    /// @dev RunLate: each run may start within `tolerance` seconds after it is due, in order, one per trigger; a
    /// run past its tolerance is missed. Skip: only the latest due run may start (and within `tolerance`); a
    /// trigger skips every earlier one, so a run's window also closes when the next is due (the last run's at
    /// `startAt + maxRuns * interval`). With `tolerance < interval` the two behave alike.
    /// For a cron schedule the same rules apply to due times: RunLate starts the earliest due time, from the stored
    /// next one, that is not past its tolerance (`CronLib.next(cron, max(nextDueAt, now - tolerance))`); Skip starts
    /// only the latest due time (`CronLib.previous(cron, now)`) if it is not before `nextDueAt` and within its
    /// tolerance, else every due time up to now is missed.
    enum MissedPolicy {
        RunLate,
        Skip
    }

    /// @notice When a subscription's runs are due, as given to `create`.
    /// @dev Note: with `cron` zero, run k (0-based, k < `maxRuns`) is due at `startAt + k * interval`. With a cron
    /// spec (`CronLib`'s packed form; `interval` must be zero) the runs are due on its matches from `startAt` on.
    /// Either way a run may start until `tolerance` seconds after it is due (less under `Skip`: see `MissedPolicy`).
    struct Schedule {
        uint64 startAt;
        uint64 interval;
        uint64 maxRuns;
        uint64 tolerance;
        MissedPolicy policy;
        uint256 cron;
    }

    /// @notice One subscription. A zero `owner` means the id was never created.
    /// @dev Note: seven slots plus the input's. Slot 0: consumer, callbackGas, policy, cancelled; 1: owner, budget;
    /// 2: startAt, interval, maxRuns, nextRun; 3: tolerance, timeout, nextDueAt; 4: templateId; 5: input; 6: cron
    /// (never read for an interval schedule). `nextRun` counts runs started or missed for an interval schedule,
    /// runs started for a cron schedule. `nextDueAt` is a cron schedule's next due time not yet started or missed
    /// (`type(uint64).max` once `CronLib` finds none; zero for an interval schedule).
    struct Subscription {
        address consumer;
        uint32 callbackGas;
        MissedPolicy policy;
        bool cancelled;
        address owner;
        uint96 budget;
        uint64 startAt;
        uint64 interval;
        uint64 maxRuns;
        uint64 nextRun;
        uint64 tolerance;
        uint64 timeout;
        uint64 nextDueAt;
        bytes32 templateId;
        bytes input;
        uint256 cron;
    }

    /// @notice Thrown when the consumer is the zero address.
    error InvalidConsumer();
    /// @notice Thrown when `maxRuns` is zero, when an interval schedule's `interval` is zero, or when a cron
    /// schedule's `interval` is not zero or its spec is not valid or has no due time from `startAt` (within
    /// `CronLib.SEARCH_DAYS`).
    error InvalidSchedule();
    /// @notice Thrown when `callbackGas` is zero, or too large for the request's gas (it and
    /// `CALLBACK_OVERHEAD`) to fit in a uint32.
    error InvalidCallbackGas(uint32 callbackGas);
    /// @notice Thrown when a budget would not fit in a uint96.
    error BudgetTooLarge(uint256 budget);
    /// @notice Thrown when no subscription has this id.
    error UnknownSubscription(uint256 id);
    /// @notice Thrown when anyone but the subscription's owner cancels or withdraws.
    error NotOwner(uint256 id, address caller);
    /// @notice Thrown when triggering, funding or cancelling a cancelled subscription.
    error SubscriptionIsCancelled(uint256 id);
    /// @notice Thrown when withdrawing from a subscription that is not cancelled.
    error SubscriptionNotCancelled(uint256 id);
    /// @notice Thrown when triggering a subscription whose every run was started or missed, or (cron) that has no
    /// due time left.
    error SubscriptionFinished(uint256 id);
    /// @notice Thrown when triggering before the next run is due.
    error RunNotDue(uint256 id, uint256 dueAt);
    /// @notice Thrown when the budget cannot pay the Coprocessor's request fee of a due run.
    error InsufficientBudget(uint256 id, uint256 budget, uint256 fee);
    /// @notice Thrown when reclaiming a request that is not an unsettled run of this contract.
    error UnknownRun(bytes32 requestId);
    /// @notice Thrown when reclaiming a run the Coprocessor fulfilled.
    error RunNotCancellable(bytes32 requestId);
    /// @notice Thrown when sending ether to an owner fails.
    error TransferFailed();

    /// @notice Emitted once per subscription, with every field a scheduler needs.
    /// @param id The subscription's id
    /// @param owner The account that may cancel it and receives its refunds
    /// @param consumer The contract each run's result is delivered to
    /// @param templateId The content hash of the template bundle each run executes
    /// @param input The fixed input; each run's request input is `abi.encode(uint64 runIndex, input)`
    /// @param startAt The Unix time, in seconds, run 0 is due at (cron: the time its due times start from)
    /// @param interval The time between two runs, in seconds (zero for a cron schedule)
    /// @param cron The packed `CronLib` spec, or zero for an interval schedule
    /// @param maxRuns The number of runs in the schedule, started or missed (cron: started)
    /// @param tolerance How late a run may start after its due time, in seconds
    /// @param policy What happens to runs not triggered in time
    /// @param callbackGas The exact gas given to the consumer's `onSubscriptionRun`
    /// @param timeout Each run's request timeout, in seconds
    /// @param budget The initial budget, in wei
    event SubscriptionCreated(
        uint256 indexed id,
        address indexed owner,
        address indexed consumer,
        bytes32 templateId,
        bytes input,
        uint64 startAt,
        uint64 interval,
        uint256 cron,
        uint64 maxRuns,
        uint64 tolerance,
        MissedPolicy policy,
        uint32 callbackGas,
        uint64 timeout,
        uint96 budget
    );
    /// @notice Emitted when a subscription's budget is topped up.
    /// @param id The subscription's id
    /// @param from The account that sent the ether
    /// @param amount The ether added, in wei
    /// @param budget The budget after the top-up, in wei
    event Funded(uint256 indexed id, address indexed from, uint256 amount, uint96 budget);
    /// @notice Emitted when a run starts: its fee left the budget and its request was sent to the Coprocessor.
    /// @param id The subscription's id
    /// @param runIndex The run's 0-based index in the schedule
    /// @param requestId The Coprocessor request carrying the run
    /// @param fee The request fee taken from the budget, in wei
    event RunTriggered(uint256 indexed id, uint64 indexed runIndex, bytes32 indexed requestId, uint96 fee);
    /// @notice Emitted when runs pass their tolerance (or are skipped) without starting; they will never run.
    /// @param id The subscription's id
    /// @param firstRunIndex The first missed run's index
    /// @param count How many consecutive runs, from `firstRunIndex`, were missed
    event RunsMissed(uint256 indexed id, uint64 firstRunIndex, uint64 count);
    /// @notice Emitted when due times of a cron schedule pass their tolerance (or are skipped) without a run; they
    /// will never run. The run index counts runs started, so it does not move.
    /// @param id The subscription's id
    /// @param firstMissedDueAt The first missed due time, in Unix seconds
    /// @param nextDueAt The first due time not missed: every due time from `firstMissedDueAt` up to it was missed;
    /// `type(uint64).max` if `CronLib` finds no due time left (the subscription is then finished)
    event DueTimesMissed(uint256 indexed id, uint64 firstMissedDueAt, uint64 nextDueAt);
    /// @notice Emitted when a run's response is settled and forwarded to the consumer.
    /// @param id The subscription's id
    /// @param runIndex The run's index
    /// @param requestId The Coprocessor request carrying the run
    /// @param status The response's `Status` value: 0 is Ok, anything else is an error
    /// @param consumerSucceeded Whether `onSubscriptionRun` returned without reverting (false as well if the
    /// output exceeded `MAX_OUTPUT_BYTES` and was not forwarded)
    event RunSettled(
        uint256 indexed id, uint64 indexed runIndex, bytes32 indexed requestId, uint8 status, bool consumerSucceeded
    );
    /// @notice Emitted when the Coprocessor's refund of a run is credited back to the budget: the whole fee of a
    /// cancelled (expired) run, or the author fee of a run answered with an error status.
    /// @param id The subscription's id
    /// @param runIndex The run's index
    /// @param requestId The Coprocessor request carrying the run
    /// @param amount The refund credited to the budget, in wei
    event RunRefunded(uint256 indexed id, uint64 indexed runIndex, bytes32 indexed requestId, uint96 amount);
    /// @notice Emitted when the owner cancels a subscription and takes its remaining budget.
    /// @param id The subscription's id
    /// @param refund The budget sent to the owner, in wei
    event SubscriptionCancelled(uint256 indexed id, uint96 refund);
    /// @notice Emitted when the owner of a cancelled subscription takes refunds credited since.
    /// @param id The subscription's id
    /// @param to The address the ether was sent to
    /// @param amount The amount sent, in wei
    event Withdrawn(uint256 indexed id, address indexed to, uint96 amount);

    /// @notice Creates a subscription owned by the caller; `msg.value` is its initial budget.
    /// @dev Note: the Coprocessor's limits (callback gas, timeout, input size) and the template's state are checked
    /// at each trigger, where they apply (they may change); a trigger the Coprocessor refuses reverts.
    /// @param consumer The contract each run's result is delivered to (`ISubscriptionConsumer`)
    /// @param templateId The content hash of the template bundle each run executes
    /// @param input The fixed input; each run's request input is `abi.encode(uint64 runIndex, input)`
    /// @param schedule When runs are due: `startAt` (the Unix time run 0 is due at, in seconds; zero means now; may
    /// be in the past, runs whose tolerance has passed are then missed), `interval` (seconds between runs, not
    /// zero), `maxRuns` (runs in the schedule, started or missed, not zero), `tolerance` (how late a run may start,
    /// in seconds: a few block times at least), `policy` (what happens to runs not triggered in time) and `cron`
    /// (zero; or a `CronLib` spec with `interval` zero: runs are then due on its matches from `startAt`, the first
    /// of which must exist, and `maxRuns` counts runs started)
    /// @param callbackGas The exact gas given to `onSubscriptionRun`; each request asks for it plus
    /// `callbackGas / 64 + CALLBACK_OVERHEAD`, this contract's share of the callback
    /// @param timeout Each run's request timeout, in seconds: after it the run can be reclaimed
    /// @return id The new subscription's id, counting from 1
    function create(
        address consumer,
        bytes32 templateId,
        bytes calldata input,
        Schedule calldata schedule,
        uint32 callbackGas,
        uint64 timeout
    ) external payable returns (uint256 id);

    /// @notice Adds `msg.value` to a subscription's budget. Anyone may fund a subscription that is not cancelled.
    /// @param id The subscription's id
    function fund(uint256 id) external payable;

    /// @notice Starts the subscription's due run: pays its request fee from the budget and sends the Coprocessor
    /// request. Anyone may call; the schedule decides which run it is.
    /// @dev Runs earlier than the one started are recorded missed first (`RunsMissed`; for a cron schedule
    /// `DueTimesMissed`, by due time), in one event whatever their number. If every due run is missed (all past
    /// their tolerance) the call only records them, advances and returns zero; it reverts `RunNotDue` if the next
    /// run is not due yet, `SubscriptionFinished` if no run is left, `InsufficientBudget` if the budget cannot pay
    /// the due run (nothing is recorded then).
    /// @param id The subscription's id
    /// @return requestId The Coprocessor request carrying the run, or zero if runs were only recorded missed
    function trigger(uint256 id) external returns (bytes32 requestId);

    /// @notice Credits the fee of an expired run back to its subscription's budget, cancelling its request at the
    /// Coprocessor first unless someone already did. Anyone may call.
    /// @param request The run's request, field for field as in `ICoprocessor.RequestSubmitted` (only `requestId`
    /// is read if the request is already cancelled)
    function reclaim(Request calldata request) external;

    /// @notice Cancels a subscription and sends its remaining budget to the owner. No run starts afterwards; runs in
    /// flight settle normally, and refunds they earn later are credited to the budget for `withdraw`.
    /// @param id The subscription's id
    function cancel(uint256 id) external;

    /// @notice Sends the budget of a cancelled subscription (refunds credited since it was cancelled) to `to`.
    /// @param id The subscription's id
    /// @param to The address that receives the whole budget
    function withdraw(uint256 id, address payable to) external;

    /// @notice A subscription (all zero if `id` was never created).
    /// @param id The subscription's id
    /// @return The subscription's terms and state
    function subscriptions(uint256 id) external view returns (Subscription memory);

    /// @notice The run a trigger would start now, or waits for, with its due time, after the runs that are missed by
    /// now under the subscription's policy.
    /// @dev A scheduler triggers when `dueAt <= block.timestamp`. Missed runs are counted but not yet recorded.
    /// Both kinds of schedule answer alike; for a cron schedule the run index is the number of runs started and
    /// `dueAt` the due time a trigger now would start (or waits for), after the due times missed by now.
    /// @param id The subscription's id
    /// @return runIndex The run's index (`maxRuns` if none is left)
    /// @return dueAt The Unix time the run is due at, in seconds; `type(uint256).max` if the subscription is
    /// cancelled, finished (cron: no due time left), or was never created
    function nextRunAt(uint256 id) external view returns (uint64 runIndex, uint256 dueAt);

    /// @notice The run a Coprocessor request carries, while it is unsettled.
    /// @param requestId The Coprocessor request's id
    /// @return id The subscription's id (zero if the request is not an unsettled run)
    /// @return runIndex The run's index
    /// @return fee The fee paid for the request, in wei
    function runOf(bytes32 requestId) external view returns (uint256 id, uint64 runIndex, uint96 fee);

    /// @notice The number of subscriptions created; ids run from 1 to it.
    /// @return The highest id
    function subscriptionCount() external view returns (uint256);

    /// @notice The catalogue the Coprocessor reads author fees from (the Coprocessor's own, read at deployment):
    /// the refund of a run answered with an error status is its template's author fee.
    /// @return The TemplateRegistry's address
    function templateRegistry() external view returns (ITemplateRegistry);

    /// @notice Gas this contract keeps for itself out of each request's callback gas, on top of `callbackGas / 64`.
    /// @return The gas added to `callbackGas` in each run's request
    function CALLBACK_OVERHEAD() external view returns (uint32);

    /// @notice The largest output forwarded to a consumer; a larger one settles the run without calling it.
    /// @return The cap, in bytes (the Coprocessor's default output cap)
    function MAX_OUTPUT_BYTES() external view returns (uint256);
}
