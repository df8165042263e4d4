// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Types} from "../../src/examples/lens/LensTypes.sol";
import {Request, Fulfillment} from "../../src/libraries/RequestLib.sol";

import {LensTestBase} from "./LensTestBase.sol";

/// @notice Gas snapshots of the Open Action's hot paths, written to `snapshots/CoprocessorGatedAction.json`.
/// @dev Note: as in `CoprocessorGasTest`, everything is prepared in `setUp` so each measured call starts
/// cold. One action is settled in `setUp` so the Coprocessor's balances are non-zero (steady state).
/// `processPublicationAction` is measured as called by the hub (the hub's own `act` overhead is not ours);
/// it includes the Coprocessor's `request`. The callback figures are `onCoprocessorResponse` alone, as the
/// Coprocessor calls it (the part `CALLBACK_GAS` must cover); "fulfill" is the node's whole settling call.
contract CoprocessorGatedActionGasTest is LensTestBase {
    bytes internal constant HOLDS = abi.encode(true, uint256(150));
    bytes internal constant DOES_NOT_HOLD = abi.encode(false, uint256(50));

    Types.ProcessActionParams internal params;
    Request internal approving;
    Request internal refusing;
    Request internal viaFulfill;
    bytes internal viaFulfillSig;

    function setUp() public override {
        super.setUp();
        _fulfillNow(_act(actor, actorProfile), HOLDS); // warms the publication's slots
        (address second, uint256 secondProfile) = _newActor("second");
        approving = _act(second, secondProfile);
        (address refused, uint256 refusedProfile) = _newActor("refused");
        refusing = _act(refused, refusedProfile);
        (address fulfilled, uint256 fulfilledProfile) = _newActor("fulfilled");
        viaFulfill = _act(fulfilled, fulfilledProfile);
        viaFulfillSig = _sign(enclaveKey, _digest(viaFulfill, 0, HOLDS));

        (address fresh, uint256 freshProfile) = _newActor("fresh");
        params.publicationActedProfileId = publisherProfile;
        params.publicationActedId = pubId;
        params.actorProfileId = freshProfile;
        params.actorProfileOwner = fresh;
        params.transactionExecutor = fresh;
    }

    function test_processPublicationAction_gas() public {
        Types.ProcessActionParams memory p = params;
        vm.prank(address(hub));
        module.processPublicationAction(p);
        vm.snapshotGasLastCall("CoprocessorGatedAction", "processPublicationAction (with Coprocessor.request)");
    }

    function test_onCoprocessorResponse_approved_gas() public {
        vm.prank(address(coprocessor));
        module.onCoprocessorResponse(approving.requestId, 0, HOLDS);
        vm.snapshotGasLastCall("CoprocessorGatedAction", "onCoprocessorResponse (approved)");
        assertTrue(module.isApproved(publisherProfile, pubId, actorProfile));
    }

    function test_onCoprocessorResponse_refused_gas() public {
        vm.prank(address(coprocessor));
        module.onCoprocessorResponse(refusing.requestId, 0, DOES_NOT_HOLD);
        vm.snapshotGasLastCall("CoprocessorGatedAction", "onCoprocessorResponse (refused)");
    }

    function test_fulfill_approved_gas() public {
        coprocessor.fulfill(_batch(_withSig(viaFulfill, HOLDS, viaFulfillSig)));
        vm.snapshotGasLastCall("CoprocessorGatedAction", "Coprocessor.fulfill single (approved)");
    }

    function _newActor(string memory name) internal returns (address who, uint256 profile) {
        who = makeAddr(name);
        profile = hub.createProfile(who);
    }

    function _fulfillNow(Request memory r, bytes memory output) internal {
        coprocessor.fulfill(_batch(_fulfillment(r, output)));
    }

    function _withSig(Request memory r, bytes memory output, bytes memory sig)
        internal
        pure
        returns (Fulfillment memory)
    {
        return Fulfillment({request: r, status: 0, output: output, signature: sig});
    }
}
