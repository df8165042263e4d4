// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoprocessorClient} from "../../src/CoprocessorClient.sol";
import {CoprocessorGatedAction} from "../../src/examples/lens/CoprocessorGatedAction.sol";
import {Types} from "../../src/examples/lens/LensTypes.sol";
import {Request} from "../../src/libraries/RequestLib.sol";

import {LensTestBase} from "./LensTestBase.sol";
import {MockLensHub} from "./MockLensHub.sol";

contract CoprocessorGatedActionTest is LensTestBase {
    event ActionRequested(
        bytes32 indexed requestId, uint256 indexed profileId, uint256 indexed pubId, uint256 actorProfileId, address actor
    );
    event ActionSettled(bytes32 indexed requestId, bool approved, uint8 status, string reason);

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        INITIALISE                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_initializePublicationAction_viaHub_storesGate() public view {
        CoprocessorGatedAction.Gate memory g = module.gate(publisherProfile, pubId);
        assertEq(g.token, TOKEN);
        assertEq(g.minimum, MINIMUM);
        assertEq(g.manager, publisher);
        assertEq(g.budget, BUDGET);
    }

    function test_initializePublicationAction_notHub_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.NotHub.selector, stranger));
        vm.prank(stranger);
        module.initializePublicationAction(publisherProfile, 7, stranger, abi.encode(TOKEN, MINIMUM));
    }

    function test_initializePublicationAction_twice_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.AlreadyInitialized.selector, publisherProfile, pubId));
        vm.prank(address(hub));
        module.initializePublicationAction(publisherProfile, pubId, stranger, abi.encode(address(0), 1));
    }

    function test_initializePublicationAction_malformedData_reverts() public {
        vm.expectRevert();
        vm.prank(address(hub));
        module.initializePublicationAction(publisherProfile, 7, publisher, hex"1234");
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          PROCESS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_processPublicationAction_notHub_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.NotHub.selector, actor));
        vm.prank(actor);
        module.processPublicationAction(_processParams(actorProfile, actor));
    }

    function test_processPublicationAction_viaHub_requestsTheHolderCheck() public {
        Request memory r = _act();
        assertEq(r.consumer, address(module));
        assertEq(r.templateId, PAID_TEMPLATE_ID);
        assertEq(r.inputHash, keccak256(abi.encode(TOKEN, actor, MINIMUM)), "input: (token, actor profile owner, minimum)");
        assertEq(r.callbackGasLimit, module.CALLBACK_GAS());
        assertEq(r.fee, AUTHOR_FEE);
        assertEq(r.deadline, block.timestamp + module.REQUEST_TIMEOUT());
        assertEq(module.gate(publisherProfile, pubId).budget, BUDGET - AUTHOR_FEE, "fee taken from the budget");
        assertEq(module.pendingRequestOf(module.actionKey(publisherProfile, pubId, actorProfile)), r.requestId);
        assertEq(module.pending(r.requestId).actionKey, module.actionKey(publisherProfile, pubId, actorProfile));
    }

    function test_processPublicationAction_viaHub_emitsActionRequestedAndReturnsRequestId() public {
        bytes32 expectedId = keccak256(abi.encode(block.chainid, address(coprocessor), uint256(0)));
        vm.expectEmit(address(module));
        emit ActionRequested(expectedId, publisherProfile, pubId, actorProfile, actor);
        vm.prank(actor);
        bytes memory result = hub.act(_actParams(actorProfile));
        assertEq(abi.decode(result, (bytes32)), expectedId);
    }

    function test_processPublicationAction_pendingForSameActor_reverts() public {
        Request memory r = _act();
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.ActionPending.selector, r.requestId));
        vm.prank(actor);
        hub.act(_actParams(actorProfile));
    }

    function test_processPublicationAction_pendingForOtherActor_succeeds() public {
        Request memory first = _act();
        address other = makeAddr("other");
        uint256 otherProfile = hub.createProfile(other);
        Request memory second = _act(other, otherProfile);
        assertTrue(first.requestId != second.requestId);
        assertEq(second.inputHash, keccak256(abi.encode(TOKEN, other, MINIMUM)));
    }

    function test_processPublicationAction_unknownPublication_reverts() public {
        Types.ProcessActionParams memory p = _processParams(actorProfile, actor);
        p.publicationActedId = 99;
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.UnknownPublication.selector, publisherProfile, 99));
        vm.prank(address(hub));
        module.processPublicationAction(p);
    }

    function test_processPublicationAction_budgetBelowFee_reverts() public {
        vm.prank(publisher);
        module.withdrawBudget(publisherProfile, pubId, payable(publisher), BUDGET - AUTHOR_FEE + 1);
        vm.expectRevert(
            abi.encodeWithSelector(CoprocessorGatedAction.InsufficientBudget.selector, AUTHOR_FEE - 1, AUTHOR_FEE)
        );
        vm.prank(actor);
        hub.act(_actParams(actorProfile));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          SETTLE                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_onResponse_holds_approves() public {
        Request memory r = _act();
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, true, 0, "");
        _fulfill(r, 0, abi.encode(true, MINIMUM + 50));
        assertTrue(module.isApproved(publisherProfile, pubId, actorProfile));
        _assertCleared(r.requestId);
    }

    function test_processPublicationAction_alreadyApproved_revertsWithoutPaying() public {
        _fulfill(_act(), 0, abi.encode(true, MINIMUM));
        uint96 budget = module.gate(publisherProfile, pubId).budget;
        vm.expectRevert(
            abi.encodeWithSelector(CoprocessorGatedAction.AlreadyApproved.selector, publisherProfile, pubId, actorProfile)
        );
        vm.prank(actor);
        hub.act(_actParams(actorProfile));
        assertEq(module.gate(publisherProfile, pubId).budget, budget);
    }

    function test_onResponse_doesNotHold_refuses() public {
        Request memory r = _act();
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, false, 0, "balance below the minimum");
        _fulfill(r, 0, abi.encode(false, MINIMUM - 1));
        assertFalse(module.isApproved(publisherProfile, pubId, actorProfile));
        _assertCleared(r.requestId);
    }

    function test_onResponse_errorStatus_refusesWithTheReason() public {
        Request memory r = _act();
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, false, 2, "no contract at token");
        _fulfill(r, 2, bytes("no contract at token"));
        assertFalse(module.isApproved(publisherProfile, pubId, actorProfile));
        _assertCleared(r.requestId);
    }

    function test_onResponse_chainDataInvalid_refuses() public {
        Request memory r = _act();
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, false, 5, "proof mismatch");
        _fulfill(r, 5, bytes("proof mismatch"));
        assertFalse(module.isApproved(publisherProfile, pubId, actorProfile));
    }

    function test_onResponse_longReason_truncated() public {
        Request memory r = _act();
        bytes memory reason = new bytes(1000);
        for (uint256 i; i < reason.length; ++i) {
            reason[i] = "x";
        }
        bytes memory cut = new bytes(module.MAX_REASON_BYTES());
        for (uint256 i; i < cut.length; ++i) {
            cut[i] = "x";
        }
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, false, 1, string(cut));
        _fulfill(r, 1, reason);
    }

    function test_onResponse_malformedOkOutput_refuses() public {
        Request memory r = _act();
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, false, 0, "malformed template output");
        _fulfill(r, 0, abi.encode(uint256(2), uint256(5)));
        assertFalse(module.isApproved(publisherProfile, pubId, actorProfile));
        _assertCleared(r.requestId);
    }

    function test_onResponse_shortOkOutput_refuses() public {
        Request memory r = _act();
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, false, 0, "malformed template output");
        _fulfill(r, 0, abi.encode(true));
    }

    function test_onCoprocessorResponse_notCoprocessor_reverts() public {
        Request memory r = _act();
        vm.expectRevert(abi.encodeWithSelector(CoprocessorClient.OnlyCoprocessor.selector, stranger));
        vm.prank(stranger);
        module.onCoprocessorResponse(r.requestId, 0, abi.encode(true, MINIMUM));
        assertFalse(module.isApproved(publisherProfile, pubId, actorProfile));
    }

    function test_onCoprocessorResponse_hub_reverts() public {
        Request memory r = _act();
        vm.expectRevert(abi.encodeWithSelector(CoprocessorClient.OnlyCoprocessor.selector, address(hub)));
        vm.prank(address(hub));
        module.onCoprocessorResponse(r.requestId, 0, abi.encode(true, MINIMUM));
    }

    function test_onCoprocessorResponse_unknownRequest_ignored() public {
        vm.recordLogs();
        vm.prank(address(coprocessor));
        module.onCoprocessorResponse(keccak256("nothing"), 0, abi.encode(true, MINIMUM));
        assertEq(vm.getRecordedLogs().length, 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          EXPIRE                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_expire_beforeDeadline_reverts() public {
        Request memory r = _act();
        vm.warp(r.deadline);
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.NotExpirable.selector, r.requestId));
        module.expire(r.requestId);
    }

    function test_expire_afterDeadline_clearsSoTheActorMayActAgain() public {
        Request memory r = _act();
        vm.warp(r.deadline + 1);
        vm.expectEmit(address(module));
        emit ActionSettled(r.requestId, false, 3, "no answer before the deadline");
        vm.prank(stranger);
        module.expire(r.requestId);
        _assertCleared(r.requestId);
        _act();
    }

    function test_expire_settled_reverts() public {
        Request memory r = _act();
        _fulfill(r, 0, abi.encode(true, MINIMUM));
        vm.warp(r.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.NotExpirable.selector, r.requestId));
        module.expire(r.requestId);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     BUDGET AND REFUNDS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_fund_unknownPublication_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.UnknownPublication.selector, publisherProfile, 99));
        module.fund{value: 1}(publisherProfile, 99);
    }

    function test_withdrawBudget_publisher_sends() public {
        address payable to = payable(makeAddr("to"));
        vm.prank(publisher);
        module.withdrawBudget(publisherProfile, pubId, to, 0.25 ether);
        assertEq(to.balance, 0.25 ether);
        assertEq(module.gate(publisherProfile, pubId).budget, BUDGET - 0.25 ether);
    }

    function test_withdrawBudget_notPublisher_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.Unauthorized.selector, stranger));
        vm.prank(stranger);
        module.withdrawBudget(publisherProfile, pubId, payable(stranger), 1);
    }

    function test_withdrawBudget_unknownPublication_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.Unauthorized.selector, address(0)));
        vm.prank(address(0));
        module.withdrawBudget(publisherProfile, 99, payable(stranger), 0);
    }

    function test_withdrawRefunds_afterErrorStatus_ownerTakesTheAuthorFee() public {
        _fulfill(_act(), 2, bytes("bad input"));
        address payable to = payable(makeAddr("refunds"));
        module.withdrawRefunds(to); // this test contract deployed the module
        assertEq(to.balance, AUTHOR_FEE);
    }

    function test_withdrawRefunds_notOwner_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorGatedAction.Unauthorized.selector, stranger));
        vm.prank(stranger);
        module.withdrawRefunds(payable(stranger));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         MOCK HUB                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_act_notProfileOwner_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(MockLensHub.NotProfileOwner.selector, stranger, actorProfile));
        vm.prank(stranger);
        hub.act(_actParams(actorProfile));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function _processParams(uint256 actorProfile_, address owner_) internal view returns (Types.ProcessActionParams memory) {
        return Types.ProcessActionParams({
            publicationActedProfileId: publisherProfile,
            publicationActedId: pubId,
            actorProfileId: actorProfile_,
            actorProfileOwner: owner_,
            transactionExecutor: owner_,
            referrerProfileIds: new uint256[](0),
            referrerPubIds: new uint256[](0),
            referrerPubTypes: new Types.PublicationType[](0),
            actionModuleData: ""
        });
    }

    /// @dev Fulfils `r` through the Coprocessor, signed by the registered enclave; asserts the callback succeeded.
    function _fulfill(Request memory r, uint8 status, bytes memory output) internal {
        vm.expectEmit(address(coprocessor));
        emit RequestFulfilled(r.requestId, enclave, status, true);
        coprocessor.fulfill(_batch(_fulfillment(r, status, output, enclaveKey)));
    }

    function _assertCleared(bytes32 requestId) internal view {
        assertEq(module.pending(requestId).actionKey, bytes32(0));
        assertEq(module.pendingRequestOf(module.actionKey(publisherProfile, pubId, actorProfile)), bytes32(0));
    }

    event RequestFulfilled(bytes32 indexed requestId, address indexed enclave, uint8 status, bool callbackSucceeded);
}

contract CoprocessorGatedActionCallbackGasTest is LensTestBase {
    function test_onResponse_approved_usesWellUnderCallbackGas() public {
        Request memory r = _act();
        vm.prank(address(coprocessor));
        uint256 before = gasleft();
        module.onCoprocessorResponse(r.requestId, 0, abi.encode(true, MINIMUM));
        uint256 used = before - gasleft();
        emit log_named_uint("gross callback gas (approved)", used);
        assertLt(used, module.CALLBACK_GAS() / 2);
    }

    function test_onResponse_longestReason_fitsCallbackGas() public {
        Request memory r = _act();
        (, uint32 maxOutputBytes,,,) = coprocessor.limits();
        bytes memory reason = new bytes(maxOutputBytes);
        vm.prank(address(coprocessor));
        uint256 before = gasleft();
        module.onCoprocessorResponse(r.requestId, 1, reason);
        uint256 used = before - gasleft();
        emit log_named_uint("gross callback gas (longest reason)", used);
        assertLt(used, module.CALLBACK_GAS() / 2);
    }
}
