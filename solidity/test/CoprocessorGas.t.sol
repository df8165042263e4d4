// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ExampleConsumer} from "../src/examples/ExampleConsumer.sol";
import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";
import {EnclaveRecord} from "../src/interfaces/IEnclaveRegistry.sol";
import {Request, Fulfillment} from "../src/libraries/RequestLib.sol";

import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice Gas snapshots of the hot paths, written to `snapshots/*.json` and checked in.
/// @dev Note: every request, signature and approval is prepared in `setUp`, which runs as its own
/// transaction, so each measured call starts with cold storage as it would on chain. One request is
/// settled in `setUp` so the payee balance and the consumer's counter are already non-zero (steady
/// state); likewise one Ok and one failed request for the paid template, asked by a second consumer,
/// so the author's balance and that consumer's refund credit are non-zero too. Figures are the callee frame's gas (no 21k intrinsic, no
/// calldata cost) and include the ExampleConsumer callback, which stores the 32-byte output, unless
/// named otherwise. Batches of 1 to 64 with a cheap callback are in `CoprocessorBatchGas.t.sol`.
contract CoprocessorGasTest is CoprocessorTestBase {
    uint256 internal constant BATCH = 10;
    /// @dev A typical small input and output: one ABI-encoded string and one uint256.
    bytes internal constant INPUT = hex"00000000000000000000000000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000000000007"
        hex"4554482f55534400000000000000000000000000000000000000000000000000";
    bytes internal constant OUTPUT = hex"00000000000000000000000000000000000000000000000000000000000f4240";
    /// @dev A typical 59-byte IPFS uri (two storage slots).
    string internal constant URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    Request internal single;
    bytes internal singleSig;
    Request[] internal batch;
    bytes[] internal batchSigs;
    Request internal expiring;
    Request internal settled;
    bytes internal settledSig;
    EnclaveRecord internal record;
    bytes[] internal approvals;
    ExampleConsumer internal paidConsumer;
    Request internal paid;
    bytes internal paidSig;
    Request internal paidFailed;
    bytes internal paidFailedSig;

    function setUp() public override {
        super.setUp();
        single = _ask(INPUT, FEE, TIMEOUT);
        singleSig = _sign(enclaveKey, _digest(single, 0, OUTPUT));
        for (uint256 i; i < BATCH; ++i) {
            Request memory r = _ask(INPUT, FEE, TIMEOUT);
            batch.push(r);
            batchSigs.push(_sign(enclaveKey, _digest(r, 0, OUTPUT)));
        }
        expiring = _ask(INPUT, FEE, TIMEOUT);
        settled = _ask(INPUT, FEE, TIMEOUT);
        settledSig = _sign(enclaveKey, _digest(settled, 0, OUTPUT));
        coprocessor.fulfill(_batch(Fulfillment(settled, 0, OUTPUT, settledSig)));

        paidConsumer = new ExampleConsumer(coprocessor);
        paid = _askPaid();
        paidSig = _sign(enclaveKey, _digest(paid, 0, OUTPUT));
        paidFailed = _askPaid();
        paidFailedSig = _sign(enclaveKey, _digest(paidFailed, 1, OUTPUT));
        coprocessor.fulfill(_batch(_fulfillment(_askPaid(), OUTPUT)));
        coprocessor.fulfill(_batch(_fulfillment(_askPaid(), 1, OUTPUT, enclaveKey)));

        (address newEnclave,) = makeAddrAndKey("gas-enclave");
        record = _record(newEnclave, payee, uint64(block.timestamp) + ENCLAVE_TTL);
        bytes[] memory sigs = _approvals(registry, record);
        for (uint256 i; i < sigs.length; ++i) {
            approvals.push(sigs[i]);
        }
    }

    /// @dev Asks for the paid template through the second consumer.
    function _askPaid() internal returns (Request memory) {
        vm.recordLogs();
        paidConsumer.ask{value: FEE}(PAID_TEMPLATE_ID, INPUT, TIMEOUT);
        return _requestFromLogs(vm.getRecordedLogs());
    }

    function test_request_gas() public {
        coprocessor.request{value: FEE}(TEMPLATE_ID, INPUT, 200_000, TIMEOUT);
        vm.snapshotGasLastCall("Coprocessor", "request");
    }

    function test_request_gasWithAuthorFee() public {
        coprocessor.request{value: FEE}(PAID_TEMPLATE_ID, INPUT, 200_000, TIMEOUT);
        vm.snapshotGasLastCall("Coprocessor", "request (author fee)");
    }

    function test_request_gasViaExampleConsumer() public {
        consumer.ask{value: FEE}(TEMPLATE_ID, INPUT, TIMEOUT);
        vm.snapshotGasLastCall("Coprocessor", "request via ExampleConsumer.ask");
    }

    function test_fulfill_gasSingle() public {
        Fulfillment[] memory fs = new Fulfillment[](1);
        fs[0] = Fulfillment(single, 0, OUTPUT, singleSig);
        coprocessor.fulfill(fs);
        uint256 gas = vm.snapshotGasLastCall("Coprocessor", "fulfill single");
        // Guard that the measured call really settled the request.
        assertEq(uint8(coprocessor.requestState(single.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
        assertGt(gas, 0);
    }

    /// @dev The single fulfil above without the ExampleConsumer's callback frame (which stores the output).
    function test_fulfill_gasSingleExcludingCallback() public {
        Fulfillment[] memory fs = _batch(Fulfillment(single, 0, OUTPUT, singleSig));
        uint256 callback = _callbackGas(fs);
        coprocessor.fulfill(fs);
        uint256 gas = vm.lastCallGas().gasTotalUsed;
        vm.snapshotValue("Coprocessor", "fulfill single: callback frame", callback);
        vm.snapshotValue("Coprocessor", "fulfill single: excluding the callback frame", gas - callback);
    }

    function test_fulfill_gasSingleWithAuthorFee() public {
        coprocessor.fulfill(_batch(Fulfillment(paid, 0, OUTPUT, paidSig)));
        vm.snapshotGasLastCall("Coprocessor", "fulfill single (author fee)");
        assertEq(coprocessor.balanceOf(author), 2 * AUTHOR_FEE);
    }

    function test_fulfill_gasSingleErrorWithAuthorFee() public {
        coprocessor.fulfill(_batch(Fulfillment(paidFailed, 1, OUTPUT, paidFailedSig)));
        vm.snapshotGasLastCall("Coprocessor", "fulfill single (author fee, error: refunded to consumer)");
        assertEq(coprocessor.balanceOf(address(paidConsumer)), 2 * AUTHOR_FEE);
    }

    function test_fulfill_gasBatchOf10() public {
        Fulfillment[] memory fs = new Fulfillment[](BATCH);
        for (uint256 i; i < BATCH; ++i) {
            fs[i] = Fulfillment(batch[i], 0, OUTPUT, batchSigs[i]);
        }
        coprocessor.fulfill(fs);
        uint256 gas = vm.snapshotGasLastCall("Coprocessor", "fulfill batch of 10");
        vm.snapshotValue("Coprocessor", "fulfill batch of 10 (per item)", gas / BATCH);
        assertEq(consumer.callbackCount(), 1 + BATCH);
    }

    function test_fulfill_gasSkippedAlreadySettled() public {
        Fulfillment[] memory fs = new Fulfillment[](1);
        fs[0] = Fulfillment(settled, 0, OUTPUT, settledSig);
        // A node that lost the race pays only for the skip.
        coprocessor.fulfill(fs);
        vm.snapshotGasLastCall("Coprocessor", "fulfill single (already settled, skipped)");
        assertEq(consumer.callbackCount(), 1);
    }

    function test_cancel_gas() public {
        vm.warp(expiring.deadline + 1);
        coprocessor.cancel(expiring);
        vm.snapshotGasLastCall("Coprocessor", "cancel");
        assertEq(coprocessor.balanceOf(address(consumer)), FEE);
    }

    function test_publish_gasNewName() public {
        vm.prank(author);
        templates.publish(keccak256("new bundle"), "median-price", "1.0.0", URI, AUTHOR_FEE);
        vm.snapshotGasLastCall("TemplateRegistry", "publish (new name)");
    }

    function test_publish_gasNewVersion() public {
        vm.prank(author);
        templates.publish(keccak256("new bundle"), TEMPLATE_NAME, "1.0.1", URI, AUTHOR_FEE);
        vm.snapshotGasLastCall("TemplateRegistry", "publish (new version)");
    }

    function test_deprecate_gas() public {
        vm.prank(author);
        templates.deprecate(TEMPLATE_ID);
        vm.snapshotGasLastCall("TemplateRegistry", "deprecate");
    }

    function test_register_gas() public {
        registry.register(record, approvals);
        vm.snapshotGasLastCall("EnclaveRegistry", "register (2 of 3 approvals)");
        assertTrue(registry.isActive(record.enclave));
    }
}
