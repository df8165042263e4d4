// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {BaseHook} from "@openzeppelin/uniswap-hooks/base/BaseHook.sol";
import {IPoolManager} from "@uniswap/v4-core/src/interfaces/IPoolManager.sol";
import {Hooks} from "@uniswap/v4-core/src/libraries/Hooks.sol";
import {LPFeeLibrary} from "@uniswap/v4-core/src/libraries/LPFeeLibrary.sol";
import {BalanceDelta} from "@uniswap/v4-core/src/types/BalanceDelta.sol";
import {PoolId, PoolIdLibrary} from "@uniswap/v4-core/src/types/PoolId.sol";
import {PoolKey} from "@uniswap/v4-core/src/types/PoolKey.sol";
import {SwapParams} from "@uniswap/v4-core/src/types/PoolOperation.sol";

import {CoprocessorClient} from "../../CoprocessorClient.sol";
import {ICoprocessor} from "../../interfaces/ICoprocessor.sol";

/// @notice A Uniswap v4 dynamic-fee hook whose LP fee is computed off-chain by a coprocessor template.
/// @dev After a swap the hook asks the template (by default `v4-volatility`: realised volatility of the
/// pool's tick over recent blocks, read from Merkle-proven storage) for a fee, and the callback sets it
/// with `PoolManager.updateDynamicLPFee`, clamped to the owner's bounds. At most one request per pool is
/// in flight, requests are at least `minInterval` blocks apart, and the hook pays each request from its
/// own ether: when it cannot, the swap goes on and the request is skipped. Pools must be initialised
/// with `LPFeeLibrary.DYNAMIC_FEE_FLAG`; the hook address must carry the afterInitialize and afterSwap
/// flags (mine a CREATE2 salt: `coprocessor/v4.py` or `script/DeployFeeHook.s.sol`).
contract CoprocessorFeeHook is BaseHook, CoprocessorClient, Ownable {
    using LPFeeLibrary for uint24;
    using PoolIdLibrary for PoolKey;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                       TYPES & STORAGE                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice What the hook asks for and how often. One slot besides the template id.
    /// @param templateId The template to run; its input is (poolManager, poolId, samples, blocksBetween,
    ///        minFee, maxFee) and its output (uint256 volatility, uint24 fee), as `v4-volatility`'s.
    /// @param minFee Least LP fee the callback sets, in hundredths of a bip.
    /// @param maxFee Greatest LP fee the callback sets, in hundredths of a bip (at most 100%).
    /// @param samples Intervals the template samples.
    /// @param blocksBetween Blocks per interval.
    /// @param minInterval Least number of blocks between two requests for one pool.
    /// @param callbackGasLimit Gas for the callback (a fee update costs ~30k).
    /// @param timeout Seconds after which an unanswered request no longer blocks the next one.
    struct Config {
        bytes32 templateId;
        uint24 minFee;
        uint24 maxFee;
        uint16 samples;
        uint16 blocksBetween;
        uint32 minInterval;
        uint32 callbackGasLimit;
        uint64 timeout;
    }

    /// @notice Request bookkeeping of one pool.
    /// @param pending The request in flight, or zero.
    /// @param deadline When the request in flight expires (the Coprocessor refuses answers after it).
    /// @param lastRequestBlock Block of the latest request.
    struct PoolState {
        bytes32 pending;
        uint64 deadline;
        uint64 lastRequestBlock;
    }

    /// @notice Current configuration.
    Config public config;

    /// @notice Keys of the pools initialised with this hook, to update their fees in callbacks.
    mapping(PoolId poolId => PoolKey) public poolKeys;

    /// @notice Request bookkeeping by pool.
    mapping(PoolId poolId => PoolState) public poolStates;

    /// @notice The pool each request is for (a response counts only while it is its pool's `pending`).
    mapping(bytes32 requestId => PoolId) public requestPools;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                       EVENTS & ERRORS                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Emitted when the configuration changes (also at deployment).
    event ConfigSet(Config config);
    /// @notice Emitted when a swap sends a fee request for `poolId`, paying `fee` wei.
    event FeeRequested(PoolId indexed poolId, bytes32 indexed requestId, uint256 fee);
    /// @notice Emitted when a request is skipped because the hook holds less than the fee.
    event RequestUnaffordable(PoolId indexed poolId, uint256 balance, uint256 fee);
    /// @notice Emitted when the Coprocessor refuses a request (e.g. a deprecated template); the swap goes on.
    event RequestRefused(PoolId indexed poolId, bytes reason);
    /// @notice Emitted when a response sets the pool's LP fee: the template proposed `proposedFee`, `fee` was set.
    event FeeUpdated(
        PoolId indexed poolId, bytes32 indexed requestId, uint24 fee, uint24 proposedFee, uint256 volatility
    );
    /// @notice Emitted when an error response leaves the fee as it was; `reason` is the template's UTF-8 reason.
    event FeeKept(PoolId indexed poolId, bytes32 indexed requestId, uint8 status, bytes reason);

    /// @notice Thrown when anyone but the owner initialises a pool with this hook.
    error PoolNotAllowed(address sender);
    /// @notice Thrown when a pool without `LPFeeLibrary.DYNAMIC_FEE_FLAG` is initialised with this hook.
    error NotDynamicFee();
    /// @notice Thrown when the fee bounds are not `minFee <= maxFee <= 100%`.
    error InvalidFeeBounds(uint24 minFee, uint24 maxFee);
    /// @notice Thrown when the sampling window is empty (fewer than 2 samples or 0 blocks between them).
    error InvalidSampling(uint16 samples, uint16 blocksBetween);
    /// @notice Thrown when `withdraw` cannot send ether to `to`.
    error WithdrawFailed(address to, uint256 amount);
    /// @notice Thrown when a response arrives for a request the hook is not waiting for.
    error UnknownRequest(bytes32 requestId);

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         CONSTRUCTOR                        */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    constructor(IPoolManager poolManager_, ICoprocessor coprocessor_, Config memory config_, address owner_)
        BaseHook(poolManager_)
        CoprocessorClient(coprocessor_)
        Ownable(owner_)
    {
        _setConfig(config_);
    }

    /// @notice Funds the requests.
    receive() external payable {}

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            HOOKS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice afterInitialize (sets the starting fee to `minFee`) and afterSwap (requests a new fee).
    function getHookPermissions() public pure override returns (Hooks.Permissions memory permissions) {
        permissions.afterInitialize = true;
        permissions.afterSwap = true;
    }

    /// @dev Accepts only dynamic-fee pools that the owner initialises (requests are paid from this hook's
    /// balance: anyone else's pools could drain it), remembers the key for the callbacks, starts at `minFee`.
    function _afterInitialize(address sender, PoolKey calldata key, uint160, int24) internal override returns (bytes4) {
        if (sender != owner()) revert PoolNotAllowed(sender);
        if (!key.fee.isDynamicFee()) revert NotDynamicFee();
        poolKeys[key.toId()] = key;
        poolManager.updateDynamicLPFee(key, config.minFee);
        return this.afterInitialize.selector;
    }

    /// @dev Requests a fee unless one is in flight or the last was too recent. Never reverts the swap for it.
    function _afterSwap(address, PoolKey calldata key, SwapParams calldata, BalanceDelta, bytes calldata)
        internal
        override
        returns (bytes4, int128)
    {
        PoolId poolId = key.toId();
        PoolState memory state = poolStates[poolId];
        Config memory c = config;
        bool inFlight = state.pending != 0 && block.timestamp <= state.deadline;
        if (inFlight || block.number < state.lastRequestBlock + c.minInterval) return (this.afterSwap.selector, 0);

        uint256 fee = coprocessor.requestFee(c.templateId);
        if (address(this).balance < fee) {
            emit RequestUnaffordable(poolId, address(this).balance, fee);
            return (this.afterSwap.selector, 0);
        }
        bytes memory input = abi.encode(poolManager, poolId, c.samples, c.blocksBetween, c.minFee, c.maxFee);
        try coprocessor.request{value: fee}(c.templateId, input, c.callbackGasLimit, c.timeout) returns (bytes32 id) {
            poolStates[poolId] = PoolState(id, uint64(block.timestamp) + c.timeout, uint64(block.number));
            requestPools[id] = poolId;
            emit FeeRequested(poolId, id, fee);
        } catch (bytes memory reason) {
            emit RequestRefused(poolId, reason);
        }
        return (this.afterSwap.selector, 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          CALLBACK                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Only the Coprocessor gets here (CoprocessorClient). Ok: set the clamped fee; error: keep it.
    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal override {
        PoolId poolId = requestPools[requestId];
        if (poolStates[poolId].pending != requestId || requestId == 0) revert UnknownRequest(requestId);
        delete poolStates[poolId].pending;
        if (status != 0) {
            emit FeeKept(poolId, requestId, status, output);
            return;
        }
        if (output.length != 64) {
            // Not the (uint256, uint24) this hook asked for (a misconfigured template): keep the fee, never revert.
            emit FeeKept(poolId, requestId, status, output);
            return;
        }
        (uint256 volatility, uint24 proposed) = abi.decode(output, (uint256, uint24));
        Config storage c = config;
        uint24 fee = proposed < c.minFee ? c.minFee : proposed > c.maxFee ? c.maxFee : proposed;
        poolManager.updateDynamicLPFee(poolKeys[poolId], fee);
        emit FeeUpdated(poolId, requestId, fee, proposed, volatility);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            ADMIN                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Replaces the configuration; fees already set stay until the next response.
    function setConfig(Config calldata config_) external onlyOwner {
        _setConfig(config_);
    }

    /// @notice Sends `amount` wei of the hook's request budget to `to`.
    function withdraw(address payable to, uint256 amount) external onlyOwner {
        (bool sent,) = to.call{value: amount}("");
        if (!sent) revert WithdrawFailed(to, amount);
    }

    /// @notice Moves refunds of cancelled requests from the Coprocessor to `to`.
    function withdrawRefunds(address payable to) external onlyOwner {
        _withdrawRefunds(to);
    }

    function _setConfig(Config memory c) internal {
        if (c.minFee > c.maxFee || c.maxFee > LPFeeLibrary.MAX_LP_FEE) revert InvalidFeeBounds(c.minFee, c.maxFee);
        if (c.samples < 2 || c.blocksBetween == 0) revert InvalidSampling(c.samples, c.blocksBetween);
        config = c;
        emit ConfigSet(c);
    }
}
