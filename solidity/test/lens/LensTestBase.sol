// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoprocessorGatedAction} from "../../src/examples/lens/CoprocessorGatedAction.sol";
import {Request} from "../../src/libraries/RequestLib.sol";

import {CoprocessorTestBase} from "../utils/CoprocessorTestBase.sol";
import {MockLensHub} from "./MockLensHub.sol";

/// @notice The Coprocessor stack of `CoprocessorTestBase`, a mock LensHub, and a `CoprocessorGatedAction`
/// on `PAID_TEMPLATE_ID` (so every check costs `AUTHOR_FEE`) attached to one funded post.
abstract contract LensTestBase is CoprocessorTestBase {
    uint256 internal constant MINIMUM = 100;
    uint256 internal constant BUDGET = 1 ether;
    address internal constant TOKEN = address(0x70CE);

    MockLensHub internal hub;
    CoprocessorGatedAction internal module;

    address internal publisher = makeAddr("publisher");
    address internal actor = makeAddr("actor");
    uint256 internal publisherProfile;
    uint256 internal actorProfile;
    uint256 internal pubId;

    function setUp() public virtual override {
        super.setUp();
        hub = new MockLensHub();
        module = new CoprocessorGatedAction(coprocessor, address(hub), PAID_TEMPLATE_ID);
        publisherProfile = hub.createProfile(publisher);
        actorProfile = hub.createProfile(actor);
        vm.prank(publisher);
        pubId = hub.post(publisherProfile, address(module), abi.encode(TOKEN, MINIMUM));
        module.fund{value: BUDGET}(publisherProfile, pubId);
    }

    /// @notice `act` params of `actorProfile_` on the post.
    function _actParams(uint256 actorProfile_) internal view returns (MockLensHub.PublicationActionParams memory) {
        return MockLensHub.PublicationActionParams({
            publicationActedProfileId: publisherProfile,
            publicationActedId: pubId,
            actorProfileId: actorProfile_,
            referrerProfileIds: new uint256[](0),
            referrerPubIds: new uint256[](0),
            actionModuleAddress: address(module),
            actionModuleData: ""
        });
    }

    /// @notice `who` (owner of `actorProfile_`) acts on the post through the hub; returns the request the module sent.
    function _act(address who, uint256 actorProfile_) internal returns (Request memory) {
        vm.recordLogs();
        vm.prank(who);
        hub.act(_actParams(actorProfile_));
        return _requestFromLogs(vm.getRecordedLogs());
    }

    /// @notice The default actor acts on the post.
    function _act() internal returns (Request memory) {
        return _act(actor, actorProfile);
    }
}
