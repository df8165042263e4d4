// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Test.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {Coprocessor} from "../src/Coprocessor.sol";
import {CoprocessorClient} from "../src/CoprocessorClient.sol";
import {ExampleConsumer} from "../src/examples/ExampleConsumer.sol";
import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";
import {IEnclaveRegistry} from "../src/interfaces/IEnclaveRegistry.sol";
import {ITemplateRegistry} from "../src/interfaces/ITemplateRegistry.sol";
import {ExactGasCall} from "../src/libraries/ExactGasCall.sol";
import {Request, Fulfillment, Status, RequestLib} from "../src/libraries/RequestLib.sol";

import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";
import {MockConsumer, EtherRejecter, WatchingConsumer} from "./utils/Mocks.sol";

/// @notice Unit and fuzz tests of the request, fulfil, cancel and withdraw lifecycle.
contract CoprocessorTest is CoprocessorTestBase {
    /// @dev Storage slot of `_commitments` (see `forge inspect Coprocessor storageLayout`).
    uint256 internal constant COMMITMENTS_SLOT = 6;
    uint32 internal constant MOCK_GAS = 300_000;
    bytes internal constant OUTPUT = hex"000000000000000000000000000000000000000000000000000000000004cb2f";

    MockConsumer internal mock;

    function setUp() public override {
        super.setUp();
        mock = new MockConsumer(coprocessor);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Requests through the MockConsumer with a chosen callback gas limit.
    function _mockRequest(uint32 callbackGasLimit, uint64 timeout) internal returns (Request memory) {
        vm.recordLogs();
        mock.request{value: FEE}(TEMPLATE_ID, "in", callbackGasLimit, timeout);
        return _requestFromLogs(vm.getRecordedLogs());
    }

    /// @notice The EIP-712 response digest as it would be computed on `chainId` by a Coprocessor at `verifier`.
    function _digestOn(uint256 chainId, address verifier, Request memory r, uint8 status, bytes memory output)
        internal
        pure
        returns (bytes32)
    {
        bytes32 domain = _domainSeparator("Coprocessor", chainId, verifier);
        bytes32 structHash =
            keccak256(abi.encode(RequestLib.RESPONSE_TYPEHASH, r.requestId, _commitment(r), status, keccak256(output)));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// @notice The `callbackSucceeded` flag of the first `RequestFulfilled` in `logs`.
    function _callbackSucceeded(Vm.Log[] memory logs) internal view returns (bool found, bool succeeded) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(coprocessor) && logs[i].topics[0] == REQUEST_FULFILLED_SIG) {
                (, succeeded) = abi.decode(logs[i].data, (uint8, bool));
                return (true, succeeded);
            }
        }
    }

    function _setLimits(uint32 maxIn, uint32 maxOut, uint32 maxGas, uint64 maxTimeout, uint96 minFee) internal {
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(maxIn, maxOut, maxGas, maxTimeout, minFee));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          REQUEST                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_request_storesOneSlotCommitment() public {
        Request memory r = _ask();
        bytes32 stored = vm.load(address(coprocessor), keccak256(abi.encode(r.requestId, COMMITMENTS_SLOT)));
        assertEq(stored, keccak256(abi.encode(r)));
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Pending));
    }

    function test_request_requestIdIsHashOfChainContractNonce() public {
        assertEq(coprocessor.nonce(), 0);
        Request memory r0 = _ask();
        Request memory r1 = _ask();
        assertEq(r0.requestId, keccak256(abi.encode(block.chainid, address(coprocessor), uint256(0))));
        assertEq(r1.requestId, keccak256(abi.encode(block.chainid, address(coprocessor), uint256(1))));
        assertEq(coprocessor.nonce(), 2);
    }

    function test_request_requestIdDependsOnChain() public {
        uint256 snap = vm.snapshotState();
        bytes32 idHere = _ask().requestId;
        vm.revertToState(snap);
        vm.chainId(10);
        bytes32 idThere = _ask().requestId;
        // Same contract, same nonce: only the chain id differs.
        assertTrue(idHere != idThere);
        assertEq(idThere, keccak256(abi.encode(uint256(10), address(coprocessor), uint256(0))));
    }

    function test_request_emitsEveryRequestField() public {
        bytes32 anchorHash = keccak256("block 999");
        vm.setBlockhash(START_BLOCK - 1, anchorHash);
        bytes memory input = abi.encode("BTC/USD", uint256(7));
        bytes32 id = keccak256(abi.encode(block.chainid, address(coprocessor), uint256(0)));
        uint32 callbackGas = consumer.CALLBACK_GAS();

        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestSubmitted(
            id,
            address(consumer),
            TEMPLATE_ID,
            input,
            keccak256(input),
            callbackGas,
            uint96(FEE),
            uint64(START_TIME) + TIMEOUT,
            uint64(START_BLOCK - 1),
            anchorHash
        );
        consumer.ask{value: FEE}(TEMPLATE_ID, input, TIMEOUT);
    }

    function test_request_anchorsPreviousBlock() public {
        bytes32 anchorHash = keccak256("block 999");
        vm.setBlockhash(START_BLOCK - 1, anchorHash);
        Request memory r = _ask();
        assertEq(r.anchorBlock, START_BLOCK - 1);
        assertEq(r.anchorHash, anchorHash);
        assertEq(r.deadline, START_TIME + TIMEOUT);
        assertEq(r.consumer, address(consumer));
        assertEq(r.fee, FEE);
    }

    function test_request_holdsFee() public {
        _ask();
        assertEq(address(coprocessor).balance, FEE);
    }

    function test_request_acceptsZeroFeeByDefault() public {
        Request memory r = _ask("free", 0, TIMEOUT);
        assertEq(r.fee, 0);
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Pending));
    }

    function test_request_revertsWhenFeeTooLow() public {
        _setLimits(16 * 1024, 16 * 1024, 2_000_000, 7 days, uint96(FEE));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.FeeTooLow.selector, FEE - 1, FEE));
        consumer.ask{value: FEE - 1}(TEMPLATE_ID, "", TIMEOUT);
        // Exactly the minimum is enough.
        consumer.ask{value: FEE}(TEMPLATE_ID, "", TIMEOUT);
    }

    function test_request_revertsWhenFeeTooHigh() public {
        uint256 fee = uint256(type(uint96).max) + 1;
        vm.deal(address(this), fee);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.FeeTooHigh.selector, fee));
        consumer.ask{value: fee}(TEMPLATE_ID, "", TIMEOUT);
    }

    function test_request_revertsWhenInputTooLarge() public {
        uint256 max = 16 * 1024;
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InputTooLarge.selector, max + 1, max));
        consumer.ask(TEMPLATE_ID, new bytes(max + 1), TIMEOUT);
        // The limit itself is inclusive.
        consumer.ask(TEMPLATE_ID, new bytes(max), TIMEOUT);
    }

    function test_request_revertsWhenCallbackGasLimitZero() public {
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InvalidCallbackGasLimit.selector, 0, 2_000_000));
        mock.request(TEMPLATE_ID, "", 0, TIMEOUT);
    }

    function test_request_revertsWhenCallbackGasLimitTooBig() public {
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InvalidCallbackGasLimit.selector, 2_000_001, 2_000_000));
        mock.request(TEMPLATE_ID, "", 2_000_001, TIMEOUT);
        mock.request(TEMPLATE_ID, "", 2_000_000, TIMEOUT);
    }

    function test_request_revertsWhenTimeoutZero() public {
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InvalidTimeout.selector, 0, 7 days));
        consumer.ask(TEMPLATE_ID, "", 0);
    }

    function test_request_revertsWhenTimeoutTooLong() public {
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InvalidTimeout.selector, 7 days + 1, 7 days));
        consumer.ask(TEMPLATE_ID, "", 7 days + 1);
        consumer.ask(TEMPLATE_ID, "", 7 days);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     FULFIL: HAPPY PATHS                    */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_fulfill_deliversOutputToConsumer() public {
        Request memory r = _ask();

        vm.expectEmit(true, true, true, true, address(consumer));
        emit ExampleConsumer.Answered(r.requestId, 0, OUTPUT);
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestFulfilled(r.requestId, enclave, 0, true);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));

        (bool received, uint8 status, bytes memory output) = consumer.responses(r.requestId);
        assertTrue(received);
        assertEq(status, 0);
        assertEq(output, OUTPUT);
        assertEq(consumer.callbackCount(), 1);
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
        assertEq(coprocessor.balanceOf(payee), FEE);
    }

    function test_fulfill_deliversEveryKnownStatus() public {
        for (uint8 s; s <= uint8(type(Status).max); ++s) {
            Request memory r = _ask();
            bytes memory reason = bytes(string.concat("reason ", vm.toString(s)));
            coprocessor.fulfill(_batch(_fulfillment(r, s, reason, enclaveKey)));
            (bool received, uint8 status, bytes memory output) = consumer.responses(r.requestId);
            assertTrue(received);
            assertEq(status, s);
            assertEq(output, reason);
        }
        assertEq(consumer.callbackCount(), uint256(type(Status).max) + 1);
    }

    function test_fulfill_settlesAtDeadline() public {
        Request memory r = _ask();
        vm.warp(r.deadline);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));
        assertEq(consumer.callbackCount(), 1);
    }

    function test_fulfill_paysPayeeNotSubmitter() public {
        Request memory r = _ask();
        vm.prank(stranger);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));
        assertEq(coprocessor.balanceOf(stranger), 0);
        assertEq(coprocessor.balanceOf(enclave), 0);
        assertEq(coprocessor.balanceOf(payee), FEE);
    }

    function test_fulfill_paysEachEnclavesOwnPayee() public {
        address payee2 = makeAddr("payee2");
        uint256 key2 = _registerEnclave("enclave2", payee2, uint64(block.timestamp) + ENCLAVE_TTL);
        Request memory r0 = _ask("a", 1 ether, TIMEOUT);
        Request memory r1 = _ask("b", 2 ether, TIMEOUT);

        coprocessor.fulfill(_batch(_fulfillment(r0, 0, OUTPUT, enclaveKey), _fulfillment(r1, 0, OUTPUT, key2)));

        assertEq(coprocessor.balanceOf(payee), 1 ether);
        assertEq(coprocessor.balanceOf(payee2), 2 ether);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                   FULFIL: SIGNER CHECKS                    */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_fulfill_revertsWhenSignerNotRegistered() public {
        Request memory r = _ask();
        (address forger, uint256 forgerKey) = makeAddrAndKey("forger");
        Fulfillment[] memory fs = _batch(_fulfillment(r, 0, OUTPUT, forgerKey));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, forger));
        coprocessor.fulfill(fs);
    }

    function test_fulfill_revertsWhenSignatureEmpty() public {
        Fulfillment memory f = _fulfillment(_ask(), OUTPUT);
        f.signature = "";
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenSignatureWrongLength() public {
        Fulfillment memory f = _fulfillment(_ask(), OUTPUT);
        // A valid 65-byte signature with its last byte dropped, and one with a byte appended.
        bytes memory sig = f.signature;
        f.signature = new bytes(64);
        for (uint256 i; i < 64; ++i) {
            f.signature[i] = sig[i];
        }
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(_batch(f));

        f.signature = bytes.concat(sig, hex"00");
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenSignatureMalleated() public {
        Request memory r = _ask();
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(enclaveKey, _digest(r, 0, OUTPUT));
        // (r, n - s, v ^ 1) recovers the same key; accepting it would make signatures malleable.
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        Fulfillment memory f = Fulfillment(r, 0, OUTPUT, abi.encodePacked(rr, highS, v == 27 ? uint8(28) : uint8(27)));
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenSignatureVInvalid() public {
        Fulfillment memory f = _fulfillment(_ask(), OUTPUT);
        f.signature[64] = bytes1(uint8(29));
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenEnclaveRevoked() public {
        Fulfillment memory f = _fulfillment(_ask(), OUTPUT);
        vm.prank(owner);
        registry.revokeEnclave(enclave);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, enclave));
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenEnclaveExpired() public {
        // A short-lived key and a long request: the key expires while the request is still live.
        (address shortLived,) = makeAddrAndKey("short-lived");
        uint256 key = _registerEnclave("short-lived", payee, uint64(block.timestamp + 1 hours));
        Request memory r = _ask("x", FEE, 1 days);
        Fulfillment memory f = _fulfillment(r, 0, OUTPUT, key);

        vm.warp(block.timestamp + 1 hours + 1);
        assertLt(block.timestamp, r.deadline);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, shortLived));
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenImageRevoked() public {
        Fulfillment memory f = _fulfillment(_ask(), OUTPUT);
        vm.prank(owner);
        registry.revokeImage(IMAGE_ID);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, enclave));
        coprocessor.fulfill(_batch(f));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                  FULFIL: WHAT IS BOUND                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_fulfill_revertsWhenInputHashChanged() public {
        Request memory r = _ask();
        r.inputHash = keccak256("other input");
        // Even freshly signed by the real enclave: the request is not the one committed.
        Fulfillment[] memory fs = _batch(_fulfillment(r, OUTPUT));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        coprocessor.fulfill(fs);
    }

    function test_fulfill_revertsWhenConsumerChanged() public {
        Request memory r = _ask();
        r.consumer = address(mock);
        Fulfillment[] memory fs = _batch(_fulfillment(r, OUTPUT));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        coprocessor.fulfill(fs);
    }

    function test_fulfill_revertsWhenRequestUnknown() public {
        Request memory r = _ask();
        r.requestId = keccak256("never requested");
        Fulfillment[] memory fs = _batch(_fulfillment(r, OUTPUT));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        coprocessor.fulfill(fs);
    }

    function test_fulfill_revertsWhenOutputChanged() public {
        Request memory r = _ask();
        Fulfillment memory f = _fulfillment(r, OUTPUT);
        f.output = abi.encode(uint256(1));
        // The signature now recovers to some unrelated address.
        address recovered = _recover(_digest(r, 0, f.output), f.signature);
        assertTrue(recovered != enclave);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, recovered));
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenStatusChanged() public {
        Request memory r = _ask();
        Fulfillment memory f = _fulfillment(r, OUTPUT);
        f.status = uint8(Status.TemplateError);
        address recovered = _recover(_digest(r, f.status, OUTPUT), f.signature);
        assertTrue(recovered != enclave);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, recovered));
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsWhenChainIdChanged() public {
        Request memory r = _ask();
        Fulfillment memory f = _fulfillment(r, OUTPUT);
        vm.chainId(block.chainid + 1);
        address recovered = _recover(_digest(r, 0, OUTPUT), f.signature);
        assertTrue(recovered != enclave);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, recovered));
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsForSignatureFromOtherChain() public {
        // The same request committed on this chain, answered with a signature made for chain 1.
        Request memory r = _ask();
        assertEq(_digestOn(block.chainid, address(coprocessor), r, 0, OUTPUT), _digest(r, 0, OUTPUT));
        bytes32 foreign = _digestOn(1, address(coprocessor), r, 0, OUTPUT);
        Fulfillment memory f = Fulfillment(r, 0, OUTPUT, _sign(enclaveKey, foreign));
        address recovered = _recover(_digest(r, 0, OUTPUT), f.signature);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, recovered));
        coprocessor.fulfill(_batch(f));
    }

    function test_fulfill_revertsForSignatureFromOtherCoprocessor() public {
        Coprocessor other = new Coprocessor(registry, templates, owner);
        Request memory r = _ask();
        bytes memory sig = _sign(enclaveKey, other.responseDigest(r.requestId, _commitment(r), 0, OUTPUT));
        address recovered = _recover(_digest(r, 0, OUTPUT), sig);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, recovered));
        coprocessor.fulfill(_batch(Fulfillment(r, 0, OUTPUT, sig)));
    }

    function test_fulfill_revertsWhenStatusInvalid() public {
        Request memory r = _ask();
        Fulfillment[] memory fs = _batch(_fulfillment(r, 6, OUTPUT, enclaveKey));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InvalidStatus.selector, 6));
        coprocessor.fulfill(fs);
    }

    function test_fulfill_revertsWhenOutputTooLarge() public {
        _setLimits(16 * 1024, 256, 2_000_000, 7 days, 0);
        Request memory r = _ask();
        Fulfillment[] memory fs = _batch(_fulfillment(r, 0, new bytes(257), enclaveKey));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.OutputTooLarge.selector, 257, 256));
        coprocessor.fulfill(fs);
        // The limit itself is inclusive.
        coprocessor.fulfill(_batch(_fulfillment(r, 0, new bytes(256), enclaveKey)));
        assertEq(consumer.callbackCount(), 1);
    }

    function test_fulfill_revertsWholeBatchOnOneBadItem() public {
        Request memory good = _ask();
        Request memory bad = _ask();
        (, uint256 forgerKey) = makeAddrAndKey("forger");
        Fulfillment[] memory fs = _batch(_fulfillment(good, OUTPUT), _fulfillment(bad, 0, OUTPUT, forgerKey));
        vm.expectPartialRevert(ICoprocessor.EnclaveNotActive.selector);
        coprocessor.fulfill(fs);
        // The good item was rolled back with the rest.
        assertEq(uint8(coprocessor.requestState(good.requestId)), uint8(ICoprocessor.RequestState.Pending));
        assertEq(consumer.callbackCount(), 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                      FULFIL: SKIPS                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_fulfill_skipsAlreadySettled() public {
        Fulfillment memory f = _fulfillment(_ask(), OUTPUT);
        coprocessor.fulfill(_batch(f));

        vm.recordLogs();
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.FulfillmentSkipped(f.request.requestId, ICoprocessor.SkipReason.AlreadySettled);
        coprocessor.fulfill(_batch(f));

        (bool fulfilled,) = _callbackSucceeded(vm.getRecordedLogs());
        assertFalse(fulfilled);
        assertEq(consumer.callbackCount(), 1);
        assertEq(coprocessor.balanceOf(payee), FEE);
    }

    function test_fulfill_skipsDuplicateInBatch() public {
        Fulfillment memory f = _fulfillment(_ask(), OUTPUT);
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestFulfilled(f.request.requestId, enclave, 0, true);
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.FulfillmentSkipped(f.request.requestId, ICoprocessor.SkipReason.AlreadySettled);
        coprocessor.fulfill(_batch(f, f));
        assertEq(consumer.callbackCount(), 1);
        assertEq(coprocessor.balanceOf(payee), FEE);
    }

    function test_fulfill_skipsExpired() public {
        Request memory r = _ask();
        Fulfillment memory f = _fulfillment(r, OUTPUT);
        vm.warp(r.deadline + 1);

        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.FulfillmentSkipped(r.requestId, ICoprocessor.SkipReason.Expired);
        coprocessor.fulfill(_batch(f));

        assertEq(consumer.callbackCount(), 0);
        assertEq(coprocessor.balanceOf(payee), 0);
        // Still pending: only `cancel` closes an expired request.
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Pending));
    }

    /// @dev Note: documents current behaviour. Expiry is checked before the signature, so anyone can
    /// have `FulfillmentSkipped(Expired)` emitted for an expired pending request with no valid signature.
    function test_fulfill_expiredWithInvalidSignatureReverts() public {
        Request memory r = _ask();
        vm.warp(r.deadline + 1);
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(_batch(Fulfillment(r, 0, OUTPUT, hex"deadbeef")));
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Pending));
    }

    /// @dev Note: documents a limitation of the example. Its fixed 200k callback gas stores at most
    /// ~200 bytes of output (192 fit, 224 do not). A larger, in-limit output settles the request and
    /// pays the fee, but the callback runs out of gas and the answer is lost.
    function test_fulfill_exampleConsumerDropsLargeOutput() public {
        Request memory r = _ask();
        // Non-zero bytes: writing zeros to fresh slots would be nearly free.
        bytes memory big = new bytes(1024);
        for (uint256 i; i < big.length; ++i) {
            big[i] = 0xab;
        }
        Fulfillment[] memory fs = _batch(_fulfillment(r, 0, big, enclaveKey));
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestFulfilled(r.requestId, enclave, 0, false);
        coprocessor.fulfill(fs);

        (bool received,,) = consumer.responses(r.requestId);
        assertFalse(received);
        assertEq(coprocessor.balanceOf(payee), FEE);
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
    }

    function test_fulfill_skipsCancelled() public {
        Request memory r = _ask();
        Fulfillment memory f = _fulfillment(r, OUTPUT);
        vm.warp(r.deadline + 1);
        coprocessor.cancel(r);

        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.FulfillmentSkipped(r.requestId, ICoprocessor.SkipReason.AlreadySettled);
        coprocessor.fulfill(_batch(f));
        assertEq(consumer.callbackCount(), 0);
        assertEq(coprocessor.balanceOf(payee), 0);
        assertEq(coprocessor.balanceOf(address(consumer)), FEE);
    }

    function test_fulfill_skipsReentrantFulfilment() public {
        vm.recordLogs();
        mock.request{value: FEE}(TEMPLATE_ID, "in", MOCK_GAS, TIMEOUT);
        Fulfillment[] memory fs = _batch(_fulfillment(_requestFromLogs(vm.getRecordedLogs()), OUTPUT));
        mock.setReentry(fs);
        mock.setMode(MockConsumer.Mode.Reenter);

        // The request is closed before the callback, so the nested fulfil only sees a settled request.
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.FulfillmentSkipped(fs[0].request.requestId, ICoprocessor.SkipReason.AlreadySettled);
        coprocessor.fulfill(fs);

        assertTrue(mock.reentrySucceeded());
        assertEq(mock.callbackCount(), 1);
        assertEq(coprocessor.balanceOf(payee), FEE);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                    FULFIL: CALLBACK GAS                    */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_fulfill_revertsWhenGasCannotCoverCallback() public {
        Fulfillment[] memory fs = _batch(_fulfillment(_ask(), OUTPUT));
        // Enough for every check, short of the consumer's callback gas plus its 1/64 reserve.
        uint256 callbackGas = consumer.CALLBACK_GAS();
        vm.expectPartialRevert(ExactGasCall.InsufficientGasForCallback.selector);
        coprocessor.fulfill{gas: callbackGas + 30_000}(fs);
        assertEq(uint8(coprocessor.requestState(fs[0].request.requestId)), uint8(ICoprocessor.RequestState.Pending));

        coprocessor.fulfill{gas: callbackGas + 200_000}(fs);
        assertEq(consumer.callbackCount(), 1);
    }

    function test_fulfill_forwardsExactCallbackGas() public {
        Request memory r = _mockRequest(MOCK_GAS, TIMEOUT);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));
        uint256 g = mock.gasAtEntry();
        // Only the callee's dispatch and calldata decoding (~600 gas) run before `gasleft()`; a 63/64 cut would cost 4.7k.
        assertLe(g, MOCK_GAS);
        assertGe(g, MOCK_GAS - 1_000);
    }

    function test_fulfill_recordsRevertingCallback() public {
        mock.setMode(MockConsumer.Mode.Revert);
        Request memory r = _mockRequest(MOCK_GAS, TIMEOUT);
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestFulfilled(r.requestId, enclave, 0, false);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));

        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
        assertEq(coprocessor.balanceOf(payee), FEE);
    }

    function test_fulfill_survivesGasBurningCallback() public {
        mock.setMode(MockConsumer.Mode.BurnGas);
        Request memory burner = _mockRequest(MOCK_GAS, TIMEOUT);
        Request memory normal = _ask();

        vm.recordLogs();
        coprocessor.fulfill(_batch(_fulfillment(burner, OUTPUT), _fulfillment(normal, OUTPUT)));
        (bool found, bool succeeded) = _callbackSucceeded(vm.getRecordedLogs());
        assertTrue(found);
        assertFalse(succeeded);

        assertEq(uint8(coprocessor.requestState(burner.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
        assertEq(consumer.callbackCount(), 1);
        assertEq(coprocessor.balanceOf(payee), 2 * FEE);
    }

    function test_fulfill_doesNotCopyReturnBomb() public {
        uint32 limit = 1_000_000;
        // A first callback warms the mock's storage, so the two measured calls differ only in the return data.
        coprocessor.fulfill(_batch(_fulfillment(_mockRequest(limit, TIMEOUT), OUTPUT)));
        Request memory quiet = _mockRequest(limit, TIMEOUT);
        Request memory loud = _mockRequest(limit, TIMEOUT);
        Fulfillment[] memory quietBatch = _batch(_fulfillment(quiet, OUTPUT));
        Fulfillment[] memory loudBatch = _batch(_fulfillment(loud, OUTPUT));

        uint256 before = gasleft();
        coprocessor.fulfill(quietBatch);
        uint256 quietGas = before - gasleft();

        // 400 KB of return data costs the callee ~343k gas of memory; copying it would cost the caller as much again.
        mock.setMode(MockConsumer.Mode.ReturnBomb);
        mock.setReturnBombSize(400_000);
        before = gasleft();
        coprocessor.fulfill(loudBatch);
        uint256 loudGas = before - gasleft();

        assertEq(mock.callbackCount(), 3);
        assertGt(loudGas - quietGas, 330_000);
        assertLt(loudGas - quietGas, 355_000);
    }

    /// @dev For any gas the submitter chooses, either the whole call fails or the callback got its full limit.
    function testFuzz_fulfill_neverStarvesCallback(uint256 gas) public {
        Request memory r = _mockRequest(MOCK_GAS, TIMEOUT);
        Fulfillment[] memory fs = _batch(_fulfillment(r, OUTPUT));
        gas = bound(gas, MOCK_GAS, 2 * MOCK_GAS);

        (bool ok,) = address(coprocessor).call{gas: gas}(abi.encodeCall(ICoprocessor.fulfill, (fs)));
        if (ok) {
            assertEq(mock.callbackCount(), 1);
            assertGe(mock.gasAtEntry(), MOCK_GAS - 1_000);
        } else {
            assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Pending));
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                  TEMPLATES & AUTHOR FEES                   */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_request_revertsWhenTemplateUnknown() public {
        bytes32 unknown = keccak256("never published");
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.UnknownTemplate.selector, unknown));
        consumer.ask{value: FEE}(unknown, "", TIMEOUT);
        assertEq(coprocessor.nonce(), 0);
    }

    function test_request_revertsWhenTemplateDeprecated() public {
        vm.prank(author);
        templates.deprecate(PAID_TEMPLATE_ID);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.TemplateIsDeprecated.selector, PAID_TEMPLATE_ID));
        consumer.ask{value: FEE}(PAID_TEMPLATE_ID, "", TIMEOUT);
        // Other templates are unaffected.
        _ask();
    }

    function test_request_revertsWhenFeeBelowAuthorFee() public {
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.FeeTooLow.selector, AUTHOR_FEE - 1, AUTHOR_FEE));
        consumer.ask{value: AUTHOR_FEE - 1}(PAID_TEMPLATE_ID, "", TIMEOUT);
        // The author fee alone is enough while `minFee` is zero.
        Request memory r = _ask(PAID_TEMPLATE_ID, "", AUTHOR_FEE, TIMEOUT);
        assertEq(r.fee, AUTHOR_FEE);
    }

    function test_request_revertsWhenFeeBelowMinFeePlusAuthorFee() public {
        _setLimits(16 * 1024, 16 * 1024, 2_000_000, 7 days, uint96(FEE));
        uint256 required = FEE + AUTHOR_FEE;
        assertEq(coprocessor.requestFee(PAID_TEMPLATE_ID), required);
        assertEq(coprocessor.requestFee(TEMPLATE_ID), FEE);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.FeeTooLow.selector, required - 1, required));
        consumer.ask{value: required - 1}(PAID_TEMPLATE_ID, "", TIMEOUT);
        consumer.ask{value: required}(PAID_TEMPLATE_ID, "", TIMEOUT);
    }

    function test_fulfill_okCreditsAuthorAndPayee() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, "x", FEE, TIMEOUT);
        vm.prank(stranger);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));

        assertEq(coprocessor.balanceOf(author), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), FEE - AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(address(consumer)), 0);
        assertEq(coprocessor.balanceOf(stranger), 0);

        // Both withdraw what they were credited; nothing is left behind.
        vm.prank(author);
        coprocessor.withdraw(payable(author));
        vm.prank(payee);
        coprocessor.withdraw(payable(payee));
        assertEq(author.balance, AUTHOR_FEE);
        assertEq(payee.balance, FEE - AUTHOR_FEE);
        assertEq(address(coprocessor).balance, 0);
    }

    function test_fulfill_errorRefundsAuthorFeeToConsumer() public {
        for (uint8 s = 1; s <= RequestLib.MAX_STATUS; ++s) {
            Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode(s), FEE, TIMEOUT);
            coprocessor.fulfill(_batch(_fulfillment(r, s, "failed", enclaveKey)));
        }
        uint256 errors = RequestLib.MAX_STATUS;
        assertEq(coprocessor.balanceOf(author), 0);
        assertEq(coprocessor.balanceOf(address(consumer)), errors * AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), errors * (FEE - AUTHOR_FEE));
    }

    function test_fulfill_chainDataInvalidIsAnErrorStatus() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, "x", FEE, TIMEOUT);
        uint8 status = uint8(Status.ChainDataInvalid);
        assertEq(status, 5);
        coprocessor.fulfill(_batch(_fulfillment(r, status, "bad proof", enclaveKey)));
        (, uint8 got, bytes memory output) = consumer.responses(r.requestId);
        assertEq(got, 5);
        assertEq(output, "bad proof");
        assertEq(coprocessor.balanceOf(address(consumer)), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(author), 0);
    }

    function test_fulfill_authorFeeMayBeTheWholeFee() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, "x", AUTHOR_FEE, TIMEOUT);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));
        assertEq(coprocessor.balanceOf(author), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), 0);
    }

    function test_fulfill_pendingRequestPaysAuthorAfterDeprecation() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, "x", FEE, TIMEOUT);
        vm.prank(author);
        templates.deprecate(PAID_TEMPLATE_ID);

        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
        assertEq(consumer.callbackCount(), 1);
        assertEq(coprocessor.balanceOf(author), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), FEE - AUTHOR_FEE);
    }

    function test_fulfill_authorThatRejectsEtherDoesNotBlockSettlement() public {
        address rejecter = address(new EtherRejecter());
        bytes32 id = keccak256("rejecter bundle");
        vm.prank(rejecter);
        templates.publish(id, "rejecter-template", "1.0.0", "", AUTHOR_FEE);

        Request memory r = _ask(id, "x", FEE, TIMEOUT);
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));
        assertEq(coprocessor.balanceOf(rejecter), AUTHOR_FEE);
        assertEq(consumer.callbackCount(), 1);
    }

    function test_fulfill_freeRequestSkipsTemplateRegistry() public {
        Request memory r = _ask("free", 0, TIMEOUT);
        Fulfillment[] memory fs = _batch(_fulfillment(r, OUTPUT));
        vm.expectCall(address(templates), abi.encodeCall(ITemplateRegistry.authorOf, (TEMPLATE_ID)), 0);
        coprocessor.fulfill(fs);
        assertEq(coprocessor.balanceOf(payee), 0);
    }

    function test_cancel_refundsWholeFeeIncludingAuthorFee() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, "x", FEE, TIMEOUT);
        vm.warp(r.deadline + 1);
        coprocessor.cancel(r);
        assertEq(coprocessor.balanceOf(address(consumer)), FEE);
        assertEq(coprocessor.balanceOf(author), 0);
        assertEq(coprocessor.balanceOf(payee), 0);
    }

    /// @dev For any fee, author fee and status, the fee is split exactly: author fee to the author on Ok,
    /// back to the consumer otherwise, the rest to the payee.
    function testFuzz_fulfill_splitsFeeExactly(uint96 authorFee, uint96 extra, uint8 status) public {
        authorFee = uint96(bound(authorFee, 0, 100 ether));
        extra = uint96(bound(extra, 0, 100 ether));
        status = uint8(bound(status, 0, RequestLib.MAX_STATUS));
        bytes32 id = keccak256(abi.encode("fuzz bundle", authorFee));
        vm.prank(author);
        templates.publish(id, "fuzz-template", "1.0.0", "", authorFee);
        assertEq(coprocessor.requestFee(id), authorFee);

        uint256 fee = uint256(authorFee) + extra;
        Request memory r = _ask(id, "x", fee, TIMEOUT);
        coprocessor.fulfill(_batch(_fulfillment(r, status, OUTPUT, enclaveKey)));

        uint256 toAuthor = status == 0 ? authorFee : 0;
        assertEq(coprocessor.balanceOf(author), toAuthor);
        assertEq(coprocessor.balanceOf(address(consumer)), authorFee - toAuthor);
        assertEq(coprocessor.balanceOf(payee), extra);
        assertEq(
            coprocessor.balanceOf(author) + coprocessor.balanceOf(address(consumer)) + coprocessor.balanceOf(payee), fee
        );
    }

    function testFuzz_request_refusesAnyUnpublishedTemplate(bytes32 templateId) public {
        vm.assume(templateId != TEMPLATE_ID && templateId != PAID_TEMPLATE_ID);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.UnknownTemplate.selector, templateId));
        consumer.ask(templateId, "", TIMEOUT);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          CANCEL                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_cancel_revertsBeforeDeadline() public {
        Request memory r = _ask();
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.DeadlineNotReached.selector, r.requestId, r.deadline));
        coprocessor.cancel(r);
        // The deadline itself still belongs to the enclave.
        vm.warp(r.deadline);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.DeadlineNotReached.selector, r.requestId, r.deadline));
        coprocessor.cancel(r);
    }

    function test_cancel_refundsConsumerAfterDeadline() public {
        Request memory r = _ask();
        vm.warp(r.deadline + 1);

        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestCancelled(r.requestId, address(consumer), uint96(FEE));
        vm.prank(stranger);
        coprocessor.cancel(r);

        assertEq(coprocessor.balanceOf(address(consumer)), FEE);
        assertEq(coprocessor.balanceOf(stranger), 0);
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Cancelled));
        assertEq(address(coprocessor).balance, FEE);
    }

    function test_cancel_revertsWhenCancelledTwice() public {
        Request memory r = _ask();
        vm.warp(r.deadline + 1);
        coprocessor.cancel(r);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.NotPending.selector, r.requestId));
        coprocessor.cancel(r);
        assertEq(coprocessor.balanceOf(address(consumer)), FEE);
    }

    function test_cancel_revertsWhenFulfilled() public {
        Request memory r = _ask();
        coprocessor.fulfill(_batch(_fulfillment(r, OUTPUT)));
        vm.warp(r.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.NotPending.selector, r.requestId));
        coprocessor.cancel(r);
    }

    function test_cancel_revertsWhenRequestAltered() public {
        Request memory r = _ask();
        vm.warp(r.deadline + 1);
        // Claiming a bigger refund than was paid.
        r.fee += 1;
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        coprocessor.cancel(r);
    }

    function test_cancel_revertsWhenRequestUnknown() public {
        Request memory r = _ask();
        r.requestId = keccak256("never requested");
        vm.warp(r.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        coprocessor.cancel(r);
    }

    /// @dev Note: documents a gap rather than a guarantee. Refunds are credited to the consumer contract,
    /// and `CoprocessorClient`/`ExampleConsumer` have no function that calls `withdraw`, so they are stuck.
    function test_withdrawRefunds_exampleConsumerOwnerRecoversRefund() public {
        Request memory r = _ask();
        vm.warp(r.deadline + 1);
        coprocessor.cancel(r);
        assertEq(coprocessor.balanceOf(address(consumer)), FEE);

        address payable stranger = payable(makeAddr("stranger"));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ExampleConsumer.NotOwner.selector, stranger));
        consumer.withdrawRefunds(stranger);

        address payable to = payable(makeAddr("refundee"));
        vm.prank(consumer.owner());
        consumer.withdrawRefunds(to);
        assertEq(to.balance, FEE);
        assertEq(coprocessor.balanceOf(address(consumer)), 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         WITHDRAW                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_withdraw_sendsCreditedBalance() public {
        coprocessor.fulfill(_batch(_fulfillment(_ask(), OUTPUT)));
        address payable to = payable(makeAddr("treasury"));

        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.Withdrawn(payee, to, FEE);
        vm.prank(payee);
        coprocessor.withdraw(to);

        assertEq(to.balance, FEE);
        assertEq(coprocessor.balanceOf(payee), 0);
        assertEq(address(coprocessor).balance, 0);
    }

    function test_withdraw_sendsConsumerRefund() public {
        Request memory r = _mockRequest(MOCK_GAS, TIMEOUT);
        vm.warp(r.deadline + 1);
        coprocessor.cancel(r);
        address payable to = payable(makeAddr("asker"));
        mock.withdraw(to);
        assertEq(to.balance, FEE);
        assertEq(coprocessor.balanceOf(address(mock)), 0);
    }

    function test_withdraw_revertsWhenRecipientRejects() public {
        coprocessor.fulfill(_batch(_fulfillment(_ask(), OUTPUT)));
        address rejecter = address(new EtherRejecter());
        vm.prank(payee);
        vm.expectRevert(ICoprocessor.WithdrawFailed.selector);
        coprocessor.withdraw(payable(rejecter));
        // The credit survives the failed transfer.
        assertEq(coprocessor.balanceOf(payee), FEE);
    }

    function test_withdraw_secondWithdrawSendsNothing() public {
        coprocessor.fulfill(_batch(_fulfillment(_ask(), OUTPUT)));
        vm.startPrank(payee);
        coprocessor.withdraw(payable(payee));
        coprocessor.withdraw(payable(payee));
        vm.stopPrank();
        assertEq(payee.balance, FEE);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                       ADMIN & VIEWS                        */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_setLimits_revertsWhenNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        coprocessor.setLimits(Coprocessor.Limits(1, 1, 1, 1, 1));
    }

    function test_setLimits_updatesLimits() public {
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.LimitsSet(100, 300, 300_000, 1 days, 5);
        _setLimits(100, 300, 300_000, 1 days, 5);
        (uint32 maxIn, uint32 maxOut, uint32 maxGas, uint64 maxTimeout, uint96 minFee) = coprocessor.limits();
        assertEq(maxIn, 100);
        assertEq(maxOut, 300);
        assertEq(maxGas, 300_000);
        assertEq(maxTimeout, 1 days);
        assertEq(minFee, 5);
    }

    function test_setLimits_revertsWhenAnErrorReasonCouldNotFit() public {
        vm.prank(owner);
        vm.expectRevert(ICoprocessor.InvalidLimits.selector);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 255, 2_000_000, 7 days, 0));
        (, uint32 maxOut,,,) = coprocessor.limits();
        assertEq(maxOut, 16 * 1024);
    }

    function test_setLimits_revertsWhenCallbackGasAboveTheBlockGasLimit() public {
        vm.prank(owner);
        vm.expectRevert(ICoprocessor.InvalidLimits.selector);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 16 * 1024, uint32(block.gaslimit + 1), 7 days, 0));
    }

    function test_transferOwnership_takesEffectOnlyWhenAccepted() public {
        address next = makeAddr("next owner");
        vm.prank(owner);
        coprocessor.transferOwnership(next);
        assertEq(coprocessor.owner(), owner, "a typo'd address must not take the trust root");
        assertEq(coprocessor.pendingOwner(), next);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        coprocessor.acceptOwnership();
        vm.prank(next);
        coprocessor.acceptOwnership();
        assertEq(coprocessor.owner(), next);
    }

    function test_setLimits_zeroTimeoutPausesRequests() public {
        _setLimits(16 * 1024, 16 * 1024, 2_000_000, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InvalidTimeout.selector, 1, 0));
        consumer.ask(TEMPLATE_ID, "", 1);
    }

    function test_constructor_setsDefaults() public view {
        (uint32 maxIn, uint32 maxOut, uint32 maxGas, uint64 maxTimeout, uint96 minFee) = coprocessor.limits();
        assertEq(maxIn, 16 * 1024);
        assertEq(maxOut, 16 * 1024);
        assertEq(maxGas, 2_000_000);
        assertEq(maxTimeout, 7 days);
        assertEq(minFee, 0);
        assertEq(address(coprocessor.registry()), address(registry));
        assertEq(address(coprocessor.templateRegistry()), address(templates));
        assertEq(coprocessor.owner(), owner);
    }

    function test_responseDigest_isEip712OverResponse() public {
        Request memory r = _ask();
        assertEq(
            coprocessor.responseDigest(r.requestId, _commitment(r), 2, OUTPUT),
            _digestOn(block.chainid, address(coprocessor), r, 2, OUTPUT)
        );
        assertEq(
            RequestLib.RESPONSE_TYPEHASH,
            keccak256("Response(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash)")
        );
    }

    function test_requestState_noneForUnknown() public view {
        assertEq(uint8(coprocessor.requestState(keccak256("nothing"))), uint8(ICoprocessor.RequestState.None));
    }

    function test_onCoprocessorResponse_revertsWhenNotCoprocessor() public {
        Request memory r = _ask();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(CoprocessorClient.OnlyCoprocessor.selector, stranger));
        consumer.onCoprocessorResponse(r.requestId, 0, OUTPUT);
        assertEq(consumer.callbackCount(), 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           FUZZ                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function testFuzz_requestFulfill_roundTrip(
        bytes calldata input,
        uint96 fee,
        uint32 callbackGasLimit,
        uint64 timeout,
        uint8 status,
        bytes calldata output
    ) public {
        vm.assume(input.length <= 16 * 1024 && output.length <= 16 * 1024);
        fee = uint96(bound(fee, 0, 100 ether));
        callbackGasLimit = uint32(bound(callbackGasLimit, 1, 2_000_000));
        timeout = uint64(bound(timeout, 1, 7 days));
        status = uint8(bound(status, 0, RequestLib.MAX_STATUS));

        vm.recordLogs();
        bytes32 id = mock.request{value: fee}(TEMPLATE_ID, input, callbackGasLimit, timeout);
        Request memory r = _requestFromLogs(vm.getRecordedLogs());
        assertEq(r.requestId, id);
        assertEq(r.inputHash, keccak256(input));
        assertEq(r.fee, fee);
        assertEq(r.callbackGasLimit, callbackGasLimit);
        assertEq(r.deadline, block.timestamp + timeout);

        vm.recordLogs();
        coprocessor.fulfill(_batch(_fulfillment(r, status, output, enclaveKey)));
        (bool found, bool succeeded) = _callbackSucceeded(vm.getRecordedLogs());

        assertTrue(found);
        assertEq(uint8(coprocessor.requestState(id)), uint8(ICoprocessor.RequestState.Fulfilled));
        assertEq(coprocessor.balanceOf(payee), fee);
        // The mock needs ~110k gas to record the call; below that the callback fails, and that is recorded.
        assertEq(succeeded, mock.callbackCount() == 1);
        if (callbackGasLimit >= MOCK_GAS) assertTrue(succeeded);
        if (succeeded) {
            assertEq(mock.lastRequestId(), id);
            assertEq(mock.lastStatus(), status);
            assertEq(mock.lastOutputHash(), keccak256(output));
        }
    }

    /// @dev Flipping any bit of any request field breaks the commitment, even when the enclave signs the altered request.
    function testFuzz_fulfill_revertsOnAnyRequestFieldChange(uint256 field, uint256 bit) public {
        Request memory r = _ask();
        field = bound(field, 0, 8);
        uint16[9] memory widths = [256, 160, 256, 256, 32, 96, 64, 64, 256];
        bit = bound(bit, 0, widths[field] - 1);

        bytes32[9] memory words = abi.decode(abi.encode(r), (bytes32[9]));
        words[field] ^= bytes32(uint256(1) << bit);
        Request memory altered = abi.decode(abi.encode(words), (Request));

        Fulfillment[] memory fs = _batch(_fulfillment(altered, OUTPUT));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, altered.requestId));
        coprocessor.fulfill(fs);
    }

    function testFuzz_fulfill_revertsForRandomKey(uint256 key) public {
        key = bound(key, 1, SECP256K1_N - 1);
        vm.assume(key != enclaveKey);
        Request memory r = _ask();
        Fulfillment[] memory fs = _batch(_fulfillment(r, 0, OUTPUT, key));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, vm.addr(key)));
        coprocessor.fulfill(fs);
    }

    function testFuzz_fulfill_revertsOnUnknownStatus(uint8 status) public {
        status = uint8(bound(status, uint256(RequestLib.MAX_STATUS) + 1, type(uint8).max));
        Request memory r = _ask();
        Fulfillment[] memory fs = _batch(_fulfillment(r, status, OUTPUT, enclaveKey));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.InvalidStatus.selector, status));
        coprocessor.fulfill(fs);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                  FULFIL: BATCH BOOKKEEPING                 */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev The commitment is hashed from the raw calldata words: dirty high bits in a word (which the
    /// ABI decoder used to refuse) make the commitment differ, so the item still reverts.
    function test_fulfill_revertsWhenRequestWordHasDirtyBits() public {
        Request memory r = _ask();
        bytes memory data = abi.encodeCall(ICoprocessor.fulfill, (_batch(_fulfillment(r, OUTPUT))));
        // selector, array offset, length, offset of item 0, then the request: its consumer word is at 0x84.
        assembly ("memory-safe") {
            let p := add(data, add(0x20, 0x84))
            mstore(p, or(mload(p), shl(160, 1)))
        }
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        // The low-level call's own result is meaningless here: `expectRevert` checks the revert data.
        (bool ignored,) = address(coprocessor).call(data);
        ignored;
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Pending));
    }

    function test_fulfill_asksRegistryOncePerSignerRun() public {
        Fulfillment[] memory fs = new Fulfillment[](3);
        for (uint256 i; i < 3; ++i) {
            fs[i] = _fulfillment(_ask(abi.encode(i), FEE, TIMEOUT), OUTPUT);
        }
        vm.expectCall(address(registry), abi.encodeCall(IEnclaveRegistry.activePayee, (enclave)), 1);
        coprocessor.fulfill(fs);
        assertEq(coprocessor.balanceOf(payee), 3 * FEE);
    }

    /// @dev Signers alternate, two of them share a payee: every payee gets exactly its enclaves' fees.
    function test_fulfill_creditsEveryPayeeAcrossInterleavedSigners() public {
        address payee2 = makeAddr("payee2");
        uint256 key2 = _registerEnclave("enclave2", payee2, uint64(block.timestamp) + ENCLAVE_TTL);
        uint256 key3 = _registerEnclave("enclave3", payee, uint64(block.timestamp) + ENCLAVE_TTL);
        uint256[6] memory keys = [enclaveKey, key2, enclaveKey, key3, key2, enclaveKey];
        Fulfillment[] memory fs = new Fulfillment[](6);
        for (uint256 i; i < 6; ++i) {
            fs[i] = _fulfillment(_ask(abi.encode(i), (i + 1) * 1 ether, TIMEOUT), 0, OUTPUT, keys[i]);
        }
        coprocessor.fulfill(fs);
        assertEq(coprocessor.balanceOf(payee), (1 + 3 + 4 + 6) * 1 ether);
        assertEq(coprocessor.balanceOf(payee2), (2 + 5) * 1 ether);
    }

    /// @dev Templates of two authors, free and paid, Ok and error statuses, in one batch.
    function test_fulfill_creditsEveryAuthorAcrossMixedTemplates() public {
        address author2 = makeAddr("author2");
        bytes32 paid2 = keccak256("second paid bundle");
        vm.prank(author2);
        templates.publish(paid2, "second-paid-template", "1.0.0", "", 2 * AUTHOR_FEE);

        bytes32[6] memory ids = [PAID_TEMPLATE_ID, paid2, TEMPLATE_ID, PAID_TEMPLATE_ID, paid2, PAID_TEMPLATE_ID];
        uint8[6] memory statuses = [0, 0, 0, 1, 0, 0];
        Fulfillment[] memory fs = new Fulfillment[](6);
        for (uint256 i; i < 6; ++i) {
            fs[i] = _fulfillment(_ask(ids[i], abi.encode(i), FEE, TIMEOUT), statuses[i], OUTPUT, enclaveKey);
        }
        coprocessor.fulfill(fs);

        assertEq(coprocessor.balanceOf(author), 2 * AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(author2), 4 * AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(address(consumer)), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), 6 * FEE - 7 * AUTHOR_FEE);
    }

    /// @dev A refund of the author fee is credited before the consumer's callback, which may withdraw it there.
    function test_fulfill_creditsRefundBeforeCallback() public {
        WatchingConsumer watcher = new WatchingConsumer(coprocessor, registry);
        vm.recordLogs();
        watcher.request{value: FEE}(PAID_TEMPLATE_ID, "x", 100_000, TIMEOUT);
        Request memory r = _requestFromLogs(vm.getRecordedLogs());
        coprocessor.fulfill(_batch(_fulfillment(r, 1, "failed", enclaveKey)));
        assertEq(watcher.creditSeen(), AUTHOR_FEE);
    }

    /// @dev The author and fee are read from the TemplateRegistry once, then from the Coprocessor's copy.
    function test_fulfill_readsTemplateTermsOnce() public {
        Request memory r0 = _ask(PAID_TEMPLATE_ID, "a", FEE, TIMEOUT);
        Request memory r1 = _ask(PAID_TEMPLATE_ID, "b", FEE, TIMEOUT);
        vm.expectCall(address(templates), abi.encodeCall(ITemplateRegistry.authorOf, (PAID_TEMPLATE_ID)), 1);
        coprocessor.fulfill(_batch(_fulfillment(r0, OUTPUT)));
        coprocessor.fulfill(_batch(_fulfillment(r1, OUTPUT)));
        assertEq(coprocessor.balanceOf(author), 2 * AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), 2 * (FEE - AUTHOR_FEE));
    }

    /// @dev The registry is asked once per signer run, so a revocation made from inside a callback (here by a
    /// consumer that owns the registry) applies from the next `fulfill` call, not to the rest of the batch.
    function test_fulfill_revocationInCallbackAppliesFromNextCall() public {
        WatchingConsumer watcher = new WatchingConsumer(coprocessor, registry);
        vm.prank(owner);
        registry.transferOwnership(address(watcher));
        vm.prank(address(watcher));
        registry.acceptOwnership();
        watcher.setRevokeTarget(enclave);

        vm.recordLogs();
        watcher.request{value: FEE}(TEMPLATE_ID, "x", 100_000, TIMEOUT);
        Request memory revoking = _requestFromLogs(vm.getRecordedLogs());
        Request memory sameBatch = _ask();
        Request memory nextCall = _ask();

        coprocessor.fulfill(_batch(_fulfillment(revoking, OUTPUT), _fulfillment(sameBatch, OUTPUT)));
        assertFalse(registry.isActive(enclave));
        assertEq(uint8(coprocessor.requestState(sameBatch.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));

        Fulfillment[] memory fs = _batch(_fulfillment(nextCall, OUTPUT));
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, enclave));
        coprocessor.fulfill(fs);
    }
}
