// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";
import {Request, Fulfillment, Status, RequestLib} from "../src/libraries/RequestLib.sol";
import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice Composed responses: a template that called others (`ctx.call`) is answered with its call tree after the
/// signature, signed as a `ComposedResponse`; on Ok each callee's author is paid out of the requested template's
/// author fee, in the order the calls ended.
contract CallTreeTest is CoprocessorTestBase {
    bytes32 internal constant CALLEE_A = keccak256("callee-a");
    bytes32 internal constant CALLEE_B = keccak256("callee-b");
    bytes32 internal constant UNPUBLISHED = keccak256("unpublished");
    uint96 internal constant FEE_A = 0.001 ether;
    uint96 internal constant FEE_B = 0.002 ether;
    bytes internal constant OUTPUT = abi.encode(uint256(42));

    address internal authorA = makeAddr("authorA");
    address internal authorB = makeAddr("authorB");

    function setUp() public override {
        super.setUp();
        vm.prank(authorA);
        templates.publish(CALLEE_A, "callee-a", "1.0.0", "", FEE_A);
        vm.prank(authorB);
        templates.publish(CALLEE_B, "callee-b", "1.0.0", "", FEE_B);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev The digest an enclave signs for a composed response, from the EIP-712 definition (not RequestLib).
    function _composedDigest(Request memory r, uint8 status, bytes memory output, bytes32[] memory calls)
        internal
        view
        returns (bytes32)
    {
        bytes32 typeHash = keccak256(
            "ComposedResponse(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash,bytes32[] calls)"
        );
        bytes32 structHash = keccak256(
            abi.encode(
                typeHash, r.requestId, _commitment(r), status, keccak256(output), keccak256(abi.encodePacked(calls))
            )
        );
        return keccak256(abi.encodePacked(hex"1901", coprocessor.domainSeparator(), structHash));
    }

    /// @dev A fulfilment signed over `signedCalls` that carries `sentCalls` after the signature.
    function _composed(Request memory r, uint8 status, bytes32[] memory signedCalls, bytes32[] memory sentCalls)
        internal
        view
        returns (Fulfillment memory f)
    {
        bytes memory signature = _sign(enclaveKey, _composedDigest(r, status, OUTPUT, signedCalls));
        f = Fulfillment({
            request: r, status: status, output: OUTPUT, signature: bytes.concat(signature, abi.encodePacked(sentCalls))
        });
    }

    function _calls(bytes32 a) internal pure returns (bytes32[] memory calls) {
        calls = new bytes32[](1);
        calls[0] = a;
    }

    function _calls(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory calls) {
        calls = new bytes32[](2);
        (calls[0], calls[1]) = (a, b);
    }

    function _calls(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32[] memory calls) {
        calls = new bytes32[](3);
        (calls[0], calls[1], calls[2]) = (a, b, c);
    }

    /// @dev The address a signature over `signed` recovers to when checked against `sent` instead.
    function _wrongSigner(Request memory r, bytes32[] memory signed, bytes32[] memory sent)
        internal
        view
        returns (address)
    {
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(enclaveKey, _composedDigest(r, 0, OUTPUT, signed));
        bytes32 checked = sent.length == 0 ? _digest(r, 0, OUTPUT) : _composedDigest(r, 0, OUTPUT, sent);
        return ecrecover(checked, v, rr, s);
    }

    /// @dev The address a plain response signature recovers to when read as a composed one over `calls`.
    function _plainSignerUnderTree(Request memory r, bytes32[] memory calls) internal view returns (address) {
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(enclaveKey, _digest(r, 0, OUTPUT));
        return ecrecover(_composedDigest(r, 0, OUTPUT, calls), v, rr, s);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          TESTS                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_composedResponseDigest_matchesTheEip712Definition() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        bytes32[] memory calls = _calls(CALLEE_A, CALLEE_B);
        bytes32 expected = _composedDigest(r, 0, OUTPUT, calls);
        assertEq(this.libDigest(r, OUTPUT, abi.encodePacked(calls)), expected);
    }

    /// @dev RequestLib's digest, called externally so its arguments are calldata.
    function libDigest(Request calldata r, bytes calldata output, bytes calldata calls)
        external
        view
        returns (bytes32)
    {
        return RequestLib.composedResponseDigest(
            coprocessor.domainSeparator(), r.requestId, keccak256(abi.encode(r)), 0, output, calls
        );
    }

    function test_fulfill_composedOk_paysEachCalleeOutOfTheAuthorFee() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        bytes32[] memory calls = _calls(CALLEE_A, CALLEE_B);

        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.CallPaid(CALLEE_A, authorA, FEE_A);
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.CallPaid(CALLEE_B, authorB, FEE_B);
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestFulfilled(r.requestId, enclave, 0, true);
        coprocessor.fulfill(_batch(_composed(r, 0, calls, calls)));
        vm.snapshotGasLastCall("Coprocessor", "fulfill single (composed: 2 calls paid)");

        assertEq(coprocessor.balanceOf(authorA), FEE_A);
        assertEq(coprocessor.balanceOf(authorB), FEE_B);
        assertEq(coprocessor.balanceOf(author), AUTHOR_FEE - FEE_A - FEE_B);
        assertEq(coprocessor.balanceOf(payee), FEE - AUTHOR_FEE);
        (bool received,, bytes memory output) = consumer.responses(r.requestId);
        assertTrue(received);
        assertEq(output, OUTPUT);
    }

    function test_fulfill_composedCalleesCostMoreThanTheAuthorFee_paidInOrderUntilItIsSpent() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        bytes32[] memory calls = _calls(CALLEE_B, CALLEE_B, CALLEE_A); // 0.002 + 0.002 of 0.004: nothing left for A
        coprocessor.fulfill(_batch(_composed(r, 0, calls, calls)));
        assertEq(coprocessor.balanceOf(authorB), 2 * FEE_B);
        assertEq(coprocessor.balanceOf(authorA), 0);
        assertEq(coprocessor.balanceOf(author), 0);
        assertEq(coprocessor.balanceOf(payee), FEE - AUTHOR_FEE);
    }

    function test_fulfill_composedUnpublishedCallee_owedNothing() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        bytes32[] memory calls = _calls(UNPUBLISHED, CALLEE_A);
        coprocessor.fulfill(_batch(_composed(r, 0, calls, calls)));
        assertEq(coprocessor.balanceOf(authorA), FEE_A);
        assertEq(coprocessor.balanceOf(author), AUTHOR_FEE - FEE_A);
    }

    function test_fulfill_composedErrorStatus_paysTheCalleeAndRefundsTheRest() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        bytes32[] memory calls = _calls(CALLEE_A);
        uint8 status = uint8(Status.TemplateError);
        coprocessor.fulfill(_batch(_composed(r, status, calls, calls)));
        assertEq(coprocessor.balanceOf(authorA), FEE_A); // it did its work, whatever the caller made of it
        assertEq(coprocessor.balanceOf(author), 0);
        assertEq(coprocessor.balanceOf(address(consumer)), AUTHOR_FEE - FEE_A);
    }

    function test_fulfill_composedFreeRequest_paysNoCallee() public {
        Request memory r = _ask(TEMPLATE_ID, abi.encode("x"), 0, TIMEOUT);
        bytes32[] memory calls = _calls(CALLEE_A);
        coprocessor.fulfill(_batch(_composed(r, 0, calls, calls)));
        assertEq(coprocessor.balanceOf(authorA), 0);
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Fulfilled));
    }

    function test_fulfill_revertsWhenCallTreeChanged() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        bytes32[] memory signed = _calls(CALLEE_A, CALLEE_B);
        bytes32[][4] memory sent =
            [_calls(CALLEE_A), _calls(CALLEE_B, CALLEE_A), _calls(CALLEE_A, CALLEE_B, CALLEE_A), new bytes32[](0)];
        for (uint256 i; i < sent.length; ++i) {
            // dropped, reordered, added, stripped: each recovers to an address that is no enclave
            address wrong = _wrongSigner(r, signed, sent[i]);
            assertTrue(wrong != enclave);
            Fulfillment[] memory batch = _batch(_composed(r, 0, signed, sent[i]));
            vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, wrong));
            coprocessor.fulfill(batch);
        }
        // A plain signature does not cover calls appended to it.
        Fulfillment memory f = _fulfillment(r, OUTPUT);
        f.signature = bytes.concat(f.signature, abi.encodePacked(signed));
        address wrongPlain = _plainSignerUnderTree(r, signed);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.EnclaveNotActive.selector, wrongPlain));
        coprocessor.fulfill(_batch(f));
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Pending));
    }

    function test_fulfill_revertsWhenCallTreeMalformed() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        Fulfillment memory f = _composed(r, 0, _calls(CALLEE_A), _calls(CALLEE_A));
        f.signature = bytes.concat(f.signature, hex"00"); // not a whole number of template ids
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(_batch(f));

        bytes32[] memory tooMany = new bytes32[](RequestLib.MAX_CALLS + 1);
        for (uint256 i; i < tooMany.length; ++i) {
            tooMany[i] = CALLEE_A;
        }
        Fulfillment[] memory batch = _batch(_composed(r, 0, tooMany, tooMany));
        vm.expectRevert(ICoprocessor.InvalidSignature.selector);
        coprocessor.fulfill(batch);
    }

    function test_fulfill_composedMaxCalls_settles() public {
        Request memory r = _ask(PAID_TEMPLATE_ID, abi.encode("x"), FEE, TIMEOUT);
        bytes32[] memory calls = new bytes32[](RequestLib.MAX_CALLS);
        for (uint256 i; i < calls.length; ++i) {
            calls[i] = CALLEE_A;
        }
        coprocessor.fulfill(_batch(_composed(r, 0, calls, calls)));
        assertEq(coprocessor.balanceOf(authorA), AUTHOR_FEE); // 4 of the 16 calls paid in full, then nothing left
        assertEq(coprocessor.balanceOf(author), 0);
    }
}
