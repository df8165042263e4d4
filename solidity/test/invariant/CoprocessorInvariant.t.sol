// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {StdInvariant} from "forge-std/StdInvariant.sol";

import {ICoprocessor} from "../../src/interfaces/ICoprocessor.sol";
import {Request} from "../../src/libraries/RequestLib.sol";

import {CoprocessorTestBase} from "../utils/CoprocessorTestBase.sol";
import {ExampleConsumer} from "../../src/examples/ExampleConsumer.sol";
import {CoprocessorHandler} from "./CoprocessorHandler.sol";

/// @notice No request settles twice, and every wei paid in is accounted for, whatever the order of
/// requests (free and with an author fee), racing batches, cancellations, deprecation, time and withdrawals.
/// forge-config: default.invariant.fail-on-revert = true
contract CoprocessorInvariantTest is CoprocessorTestBase {
    CoprocessorHandler internal handler;
    ExampleConsumer internal wconsumer;

    function setUp() public override {
        super.setUp();
        wconsumer = new ExampleConsumer(coprocessor);

        // Two enclaves with their own payees, valid for far longer than any run can warp.
        address payee2 = makeAddr("payee2");
        uint256[] memory keys = new uint256[](2);
        address[] memory payees_ = new address[](2);
        keys[0] = _registerEnclave("enclave-long", payee, uint64(block.timestamp) + 3650 days);
        payees_[0] = payee;
        keys[1] = _registerEnclave("enclave2", payee2, uint64(block.timestamp) + 3650 days);
        payees_[1] = payee2;

        handler = new CoprocessorHandler(coprocessor, wconsumer, keys, payees_);

        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = CoprocessorHandler.request.selector;
        selectors[1] = CoprocessorHandler.fulfill.selector;
        selectors[2] = CoprocessorHandler.fulfillForged.selector;
        selectors[3] = CoprocessorHandler.cancel.selector;
        selectors[4] = CoprocessorHandler.warp.selector;
        selectors[5] = CoprocessorHandler.withdraw.selector;
        selectors[6] = CoprocessorHandler.deprecate.selector;
        targetSelector(StdInvariant.FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @notice Each request is settled at most once, by fulfilment or cancellation, and each
    /// fulfilment made exactly one callback.
    function invariant_settlesAtMostOnce() public view {
        uint256 n = handler.requestCount();
        uint256 answered;
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.requestAt(i).requestId;
            uint256 fulfilled = handler.fulfilledEvents(id);
            uint256 cancelled = handler.cancelledEvents(id);
            assertLe(fulfilled + cancelled, 1, "settled twice");

            ICoprocessor.RequestState state = coprocessor.requestState(id);
            (bool received,,) = wconsumer.responses(id);
            if (received) ++answered;
            if (fulfilled == 1) {
                assertEq(uint8(state), uint8(ICoprocessor.RequestState.Fulfilled), "fulfilled state");
                assertTrue(received, "fulfilled without callback");
            } else if (cancelled == 1) {
                assertEq(uint8(state), uint8(ICoprocessor.RequestState.Cancelled), "cancelled state");
            } else {
                assertEq(uint8(state), uint8(ICoprocessor.RequestState.Pending), "pending state");
            }
        }
        assertEq(wconsumer.callbackCount(), handler.distinctFulfilled(), "callbacks != fulfilled requests");
        assertEq(answered, handler.distinctFulfilled(), "answers != fulfilled requests");
    }

    /// @notice Fees in = fees of settled requests (split between payees, the author and consumer refunds)
    /// + refunds of cancelled ones + fees of pending requests, and the contract holds exactly the credited
    /// balances not yet withdrawn plus the pending fees.
    function invariant_feesConserved() public view {
        uint256 pending = handler.pendingFees();
        assertEq(
            handler.ghostFeesIn(), handler.ghostFeesPaid() + handler.ghostRefunds() + pending, "fees not conserved"
        );

        uint256 credited;
        uint256 payeeCount = handler.payeeCount();
        for (uint256 i; i <= payeeCount + 1; ++i) {
            address account =
                i == payeeCount ? address(wconsumer) : i > payeeCount ? handler.author() : handler.payees(i);
            uint256 balance = coprocessor.balanceOf(account);
            assertEq(balance, handler.ghostCredited(account) - handler.ghostWithdrawn(account), "balance drift");
            credited += balance;
        }
        assertEq(address(coprocessor).balance, credited + pending, "ether not backed");
    }
}
