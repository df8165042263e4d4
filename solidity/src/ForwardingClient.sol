// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoprocessorClient} from "./CoprocessorClient.sol";
import {ICoprocessor} from "./interfaces/ICoprocessor.sol";
import {ExactGasCall} from "./libraries/ExactGasCall.sol";
import {Request} from "./libraries/RequestLib.sol";

/// @notice Base for contracts that make Coprocessor requests on behalf of others, out of funds they hold for them,
/// and forward each result to another contract: `Sponsorships` (sponsored jobs) and `Subscriptions` (scheduled runs).
/// @dev Note: what such a contract shares:
/// - It is the Coprocessor's consumer of every request it makes, so the Coprocessor credits refunds to it (the
///   whole fee of a cancelled request, the author fee of one answered with an error status), never pushes them.
///   The ether stays credited there until the contract needs it: `_ensureBalance` withdraws it all before a payment
///   its own balance cannot cover, and `receive` takes it from the Coprocessor only.
/// - Its callback never reverts: it forwards with `_forwardExactly`, which returns false instead of reverting, and
///   asks each request for `_forwardingGas`: the downstream gas, the 1/64 its own frame keeps, and its overhead.
/// - An expired request is closed with `_cancelExpired` before its fee is credited back to whoever paid it.
abstract contract ForwardingClient is CoprocessorClient {
    constructor(ICoprocessor coprocessor_) CoprocessorClient(coprocessor_) {}

    /// @notice Takes the refunds the Coprocessor sends on `withdraw`; refuses ether from anyone else.
    receive() external payable {
        if (msg.sender != address(coprocessor)) revert OnlyCoprocessor(msg.sender);
    }

    /// @dev Calls `target` with exactly `gasLimit` gas, as `ExactGasCall.call` does, but returns false instead of
    /// reverting when this frame cannot forward that much (it always can if the request asked for
    /// `_forwardingGas`). Return data is never copied.
    function _forwardExactly(address target, uint256 gasLimit, bytes memory data) internal returns (bool success) {
        uint256 available = gasleft();
        uint256 overhead = ExactGasCall.CALL_OVERHEAD;
        if (available < overhead || available - overhead - (available - overhead) / 64 < gasLimit) return false;
        assembly ("memory-safe") {
            success := call(gasLimit, target, 0, add(data, 0x20), mload(data), 0, 0)
        }
    }

    /// @dev The callback gas a request asks for to forward `callbackGas`: it, the 1/64 this frame keeps when
    /// calling, and `overhead`, what this contract's own callback spends besides.
    function _forwardingGas(uint32 callbackGas, uint32 overhead) internal pure returns (uint256) {
        return uint256(callbackGas) + callbackGas / 64 + overhead;
    }

    /// @dev Withdraws this contract's refunds from the Coprocessor if its own balance cannot pay `amount`.
    function _ensureBalance(uint256 amount) internal {
        if (address(this).balance < amount) _withdrawRefunds(payable(address(this)));
    }

    /// @dev Sends `amount` to `to` (after the caller's state changes); returns whether the transfer succeeded.
    function _pay(address payable to, uint256 amount) internal returns (bool ok) {
        if (amount == 0) return true;
        _ensureBalance(amount);
        (ok,) = to.call{value: amount}("");
    }

    /// @dev Makes sure `request` is cancelled at the Coprocessor, so its whole fee is credited to this contract:
    /// cancels it if it is pending (the Coprocessor reverts unless `request` is the committed one and its deadline
    /// has passed); returns false if the Coprocessor settled it instead (or never knew it).
    /// @dev Note: a request someone else already cancelled returns true; only `requestId` is read then.
    function _cancelExpired(Request calldata request) internal returns (bool cancelled) {
        ICoprocessor.RequestState state = coprocessor.requestState(request.requestId);
        if (state == ICoprocessor.RequestState.Pending) {
            coprocessor.cancel(request);
            return true;
        }
        return state == ICoprocessor.RequestState.Cancelled;
    }
}
