// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoprocessorClient} from "../../CoprocessorClient.sol";
import {ICoprocessor} from "../../interfaces/ICoprocessor.sol";
import {IPublicationActionModule} from "./IPublicationActionModule.sol";
import {Types} from "./LensTypes.sol";

/// @notice A Lens v2 Open Action that admits an actor only if the coprocessor proves they hold a token.
///
/// The publisher attaches the module with `abi.encode(address token, uint256 minimum)` (token
/// address(0) means ETH) and funds the publication's fee budget with `fund`. When a profile acts, the
/// module asks the token-holder template whether the acting profile's owner held at least `minimum` of
/// `token` (a balance the enclave proves against the request's anchor block) and emits
/// `ActionRequested`. The coprocessor's callback settles the action: approved when the template
/// answers that the owner holds enough, refused otherwise (`ActionSettled`). An approval is recorded
/// for good (`isApproved`), for other contracts to build on.
///
/// Fees: LensHub's `act` is not payable, so each request's fee, `coprocessor.requestFee(templateId)`,
/// is taken from the acted publication's budget, which anyone may top up (`fund`) and the publisher
/// (the address that published it) may take back (`withdrawBudget`). A check that ends in an error
/// status still costs its fee. Refunds the Coprocessor credits to this module (cancelled requests, and
/// the author fee of answers with an error status) go to the deployer (`withdrawRefunds`).
///
/// @dev Note: the Lens entry points only decode and call a Lens-agnostic core (`_configureGate`,
/// `_requestCheck`, `_onResponse`) that knows a publication as a pair of numbers and an actor as a
/// number and the address whose balance counts. A Lens v3 `IPostAction` adapter (feed and post id, an
/// account as actor) is a second pair of thin entry points over the same core.
contract CoprocessorGatedAction is IPublicationActionModule, CoprocessorClient {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          TYPES                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice A publication's settings and fee budget.
    struct Gate {
        address token;
        uint96 budget;
        uint256 minimum;
        /// @dev Who published: may take the budget back. Non-zero once the publication is initialised.
        address manager;
    }

    /// @notice An action waiting for its callback.
    struct Pending {
        /// @dev `actionKey(profileId, pubId, actorProfileId)`.
        bytes32 actionKey;
        /// @dev The Coprocessor skips answers after this time; from then on `expire` may clear it.
        uint64 deadline;
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     ERRORS AND EVENTS                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Thrown when anyone but the hub calls a hub entry point.
    error NotHub(address caller);
    /// @notice Thrown when initialising a publication twice.
    error AlreadyInitialized(uint256 profileId, uint256 pubId);
    /// @notice Thrown when acting on, or funding, a publication the module was never initialised for.
    error UnknownPublication(uint256 profileId, uint256 pubId);
    /// @notice Thrown when the same profile acts on the same publication while its check is pending.
    error ActionPending(bytes32 requestId);
    /// @notice Thrown when an actor already approved on a publication acts again (no new check is paid for).
    error AlreadyApproved(uint256 profileId, uint256 pubId, uint256 actorProfileId);
    /// @notice Thrown when the publication's budget cannot pay the request fee.
    error InsufficientBudget(uint256 budget, uint256 fee);
    /// @notice Thrown when a budget would not fit in a uint96.
    error BudgetTooLarge(uint256 budget);
    /// @notice Thrown when anyone but the publisher withdraws a budget, or anyone but the deployer refunds.
    error Unauthorized(address caller);
    /// @notice Thrown when expiring a request that is not pending, or whose deadline has not passed.
    error NotExpirable(bytes32 requestId);
    /// @notice Thrown when an ether transfer fails.
    error TransferFailed();

    /// @notice A publication was set up: actors need `minimum` of `token` (address(0): ETH).
    event GateConfigured(uint256 indexed profileId, uint256 indexed pubId, address token, uint256 minimum, address manager);
    /// @notice A publication's fee budget changed.
    event BudgetChanged(uint256 indexed profileId, uint256 indexed pubId, uint256 budget);
    /// @notice `actor` (owner of `actorProfileId`) acted; the check runs as `requestId`.
    event ActionRequested(
        bytes32 indexed requestId, uint256 indexed profileId, uint256 indexed pubId, uint256 actorProfileId, address actor
    );
    /// @notice The check of `requestId` is settled. `status` is the Coprocessor's (0 Ok); `reason` says why
    /// an action was refused: the template's error (at most `MAX_REASON_BYTES`), or a short note of ours.
    event ActionSettled(bytes32 indexed requestId, bool approved, uint8 status, string reason);

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         CONSTANTS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Callback gas of every request: settling uses under 40k, whatever the output (see `snapshots/`).
    uint32 public constant CALLBACK_GAS = 100_000;
    /// @notice Seconds the coprocessor has to answer before the action may be expired.
    uint64 public constant REQUEST_TIMEOUT = 1 hours;
    /// @notice Longest template error reason repeated in `ActionSettled`.
    uint256 public constant MAX_REASON_BYTES = 256;

    uint8 internal constant STATUS_OK = 0;
    uint8 internal constant STATUS_TIMEOUT = 3;

    /// @notice The hub allowed to initialise and process (LensHub, or a test double).
    address public immutable HUB;
    /// @notice The template asked: inputs (address token, address holder, uint256 minimum), outputs (bool, uint256).
    bytes32 public immutable TEMPLATE_ID;
    /// @notice The deployer, who may withdraw refunds credited by the Coprocessor.
    address public immutable OWNER = msg.sender;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Settings by `publicationKey(profileId, pubId)`.
    mapping(bytes32 publicationKey => Gate) internal _gates;
    /// @notice Checks waiting for their callback, by request id.
    mapping(bytes32 requestId => Pending) internal _pending;
    /// @notice The pending request of an actor on a publication, by `actionKey`; zero when none.
    mapping(bytes32 actionKey => bytes32 requestId) public pendingRequestOf;
    /// @notice Whether an actor was approved on a publication, by `actionKey`.
    mapping(bytes32 actionKey => bool) internal _approved;

    /// @param coprocessor_ The Coprocessor that runs the checks.
    /// @param hub The hub (LensHub) allowed to call the entry points.
    /// @param templateId The token-holder template (or one with the same inputs and outputs).
    constructor(ICoprocessor coprocessor_, address hub, bytes32 templateId) CoprocessorClient(coprocessor_) {
        HUB = hub;
        TEMPLATE_ID = templateId;
    }

    modifier onlyHub() {
        if (msg.sender != HUB) revert NotHub(msg.sender);
        _;
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                  LENS V2 ENTRY POINTS                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc IPublicationActionModule
    /// @dev `data` is `abi.encode(address token, uint256 minimum)`. Returns it as is.
    function initializePublicationAction(uint256 profileId, uint256 pubId, address transactionExecutor, bytes calldata data)
        external
        onlyHub
        returns (bytes memory)
    {
        (address token, uint256 minimum) = abi.decode(data, (address, uint256));
        _configureGate(profileId, pubId, transactionExecutor, token, minimum);
        return data;
    }

    /// @inheritdoc IPublicationActionModule
    /// @dev Checks the acting profile's owner; `actionModuleData` is not used. Returns `abi.encode(requestId)`.
    function processPublicationAction(Types.ProcessActionParams calldata params) external onlyHub returns (bytes memory) {
        bytes32 requestId = _requestCheck(
            params.publicationActedProfileId, params.publicationActedId, params.actorProfileId, params.actorProfileOwner
        );
        return abi.encode(requestId);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     ANYONE, PUBLISHER, OWNER               */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Adds `msg.value` to the fee budget of a publication.
    function fund(uint256 profileId, uint256 pubId) external payable {
        Gate storage g = _gates[publicationKey(profileId, pubId)];
        if (g.manager == address(0)) revert UnknownPublication(profileId, pubId);
        uint256 budget = g.budget + msg.value;
        if (budget > type(uint96).max) revert BudgetTooLarge(budget);
        g.budget = uint96(budget);
        emit BudgetChanged(profileId, pubId, budget);
    }

    /// @notice Sends `amount` of a publication's budget to `to`. Only the address that published it.
    function withdrawBudget(uint256 profileId, uint256 pubId, address payable to, uint256 amount) external {
        Gate storage g = _gates[publicationKey(profileId, pubId)];
        if (g.manager == address(0) || msg.sender != g.manager) revert Unauthorized(msg.sender);
        if (amount > g.budget) revert InsufficientBudget(g.budget, amount);
        g.budget -= uint96(amount);
        emit BudgetChanged(profileId, pubId, g.budget);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Clears an action the coprocessor did not answer before its deadline, so the actor may act
    /// again. Anyone may call; the fee comes back through `withdrawRefunds` once the request is cancelled.
    function expire(bytes32 requestId) external {
        Pending memory p = _pending[requestId];
        if (p.actionKey == bytes32(0) || block.timestamp <= p.deadline) revert NotExpirable(requestId);
        _clear(requestId, p.actionKey);
        emit ActionSettled(requestId, false, STATUS_TIMEOUT, "no answer before the deadline");
    }

    /// @notice Sends refunds the Coprocessor credited to this module to `to`. Only the deployer.
    function withdrawRefunds(address payable to) external {
        if (msg.sender != OWNER) revert Unauthorized(msg.sender);
        _withdrawRefunds(to);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice A publication's settings and budget.
    function gate(uint256 profileId, uint256 pubId) external view returns (Gate memory) {
        return _gates[publicationKey(profileId, pubId)];
    }

    /// @notice Whether `actorProfileId` was ever approved on a publication.
    function isApproved(uint256 profileId, uint256 pubId, uint256 actorProfileId) external view returns (bool) {
        return _approved[actionKey(profileId, pubId, actorProfileId)];
    }

    /// @notice The action a pending request checks, and its deadline; zero when not pending.
    function pending(bytes32 requestId) external view returns (Pending memory) {
        return _pending[requestId];
    }

    /// @notice Storage key of a publication.
    function publicationKey(uint256 profileId, uint256 pubId) public pure returns (bytes32) {
        return keccak256(abi.encode(profileId, pubId));
    }

    /// @notice Storage key of an actor on a publication.
    function actionKey(uint256 profileId, uint256 pubId, uint256 actorProfileId) public pure returns (bytes32) {
        return keccak256(abi.encode(profileId, pubId, actorProfileId));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                 CORE (NOTHING LENS-SPECIFIC)               */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Stores the settings of a new publication, managed by `manager`.
    function _configureGate(uint256 profileId, uint256 pubId, address manager, address token, uint256 minimum)
        internal
    {
        Gate storage g = _gates[publicationKey(profileId, pubId)];
        if (g.manager != address(0)) revert AlreadyInitialized(profileId, pubId);
        if (manager == address(0)) revert Unauthorized(manager);
        g.token = token;
        g.minimum = minimum;
        g.manager = manager;
        emit GateConfigured(profileId, pubId, token, minimum, manager);
    }

    /// @notice Asks whether `holder` holds enough for the publication, on behalf of `actorId`; pays the
    /// fee from the publication's budget and records the action as pending.
    function _requestCheck(uint256 profileId, uint256 pubId, uint256 actorId, address holder)
        internal
        returns (bytes32 requestId)
    {
        Gate storage g = _gates[publicationKey(profileId, pubId)];
        if (g.manager == address(0)) revert UnknownPublication(profileId, pubId);
        bytes32 key = actionKey(profileId, pubId, actorId);
        // An approval is for good: asking again would only spend the publication's budget.
        if (_approved[key]) revert AlreadyApproved(profileId, pubId, actorId);
        bytes32 waiting = pendingRequestOf[key];
        if (waiting != bytes32(0)) revert ActionPending(waiting);

        uint256 fee = coprocessor.requestFee(TEMPLATE_ID);
        uint96 budget = g.budget;
        if (budget < fee) revert InsufficientBudget(budget, fee);
        g.budget = budget - uint96(fee);

        requestId =
            _request(TEMPLATE_ID, abi.encode(g.token, holder, g.minimum), CALLBACK_GAS, REQUEST_TIMEOUT, fee);
        pendingRequestOf[key] = requestId;
        _pending[requestId] = Pending({actionKey: key, deadline: uint64(block.timestamp) + REQUEST_TIMEOUT});
        emit ActionRequested(requestId, profileId, pubId, actorId, holder);
    }

    /// @notice Settles a check: approved on Ok when the template says the holder holds enough.
    /// @dev Never reverts on a pending request, so an action is always settled by its answer: a malformed
    /// Ok output is a refusal, not a stuck action. An unknown request id (already expired) is ignored.
    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal override {
        bytes32 key = _pending[requestId].actionKey;
        if (key == bytes32(0)) return;
        _clear(requestId, key);

        if (status != STATUS_OK) {
            uint256 n = output.length < MAX_REASON_BYTES ? output.length : MAX_REASON_BYTES;
            emit ActionSettled(requestId, false, status, string(output[:n]));
            return;
        }
        // Outputs (bool holds, uint256 balance): exactly two words, the first 0 or 1.
        uint256 holds = output.length == 64 ? uint256(bytes32(output[:32])) : type(uint256).max;
        if (holds == 1) {
            _approved[key] = true;
            emit ActionSettled(requestId, true, status, "");
        } else if (holds == 0) {
            emit ActionSettled(requestId, false, status, "balance below the minimum");
        } else {
            emit ActionSettled(requestId, false, status, "malformed template output");
        }
    }

    function _clear(bytes32 requestId, bytes32 key) private {
        delete _pending[requestId];
        delete pendingRequestOf[key];
    }
}
