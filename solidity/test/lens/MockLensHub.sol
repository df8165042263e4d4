// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPublicationActionModule} from "../../src/examples/lens/IPublicationActionModule.sol";
import {Types} from "../../src/examples/lens/LensTypes.sol";

/// @notice TEST DOUBLE of LensHub: just enough of its profile, post and `act` roles to drive an Open
/// Action module as the real hub would (the module sees `msg.sender == hub`). No follow, reference,
/// delegation, signatures, referrals or module whitelists. Not for deployment.
contract MockLensHub {
    /// @notice What a profile passes to `act`, shaped like Lens v2's `Types.PublicationActionParams`.
    struct PublicationActionParams {
        uint256 publicationActedProfileId;
        uint256 publicationActedId;
        uint256 actorProfileId;
        uint256[] referrerProfileIds;
        uint256[] referrerPubIds;
        address actionModuleAddress;
        bytes actionModuleData;
    }

    error NotProfileOwner(address caller, uint256 profileId);
    error ActionModuleNotEnabled(uint256 profileId, uint256 pubId, address module);

    /// @notice Like LensHub's: emitted with what the module returned.
    event Acted(PublicationActionParams params, bytes actionModuleReturnData);
    event PostCreated(uint256 indexed profileId, uint256 indexed pubId, address actionModule, bytes initResult);

    uint256 public profileCount;
    mapping(uint256 profileId => address) public ownerOf;
    mapping(uint256 profileId => uint256) public pubCount;
    mapping(uint256 profileId => mapping(uint256 pubId => address)) public actionModuleOf;

    /// @notice Mints a profile to `to`; returns its id (from 1).
    function createProfile(address to) external returns (uint256 profileId) {
        profileId = ++profileCount;
        ownerOf[profileId] = to;
    }

    /// @notice Publishes a post by `profileId` with one action module, initialised with `initData`.
    function post(uint256 profileId, address actionModule, bytes calldata initData) external returns (uint256 pubId) {
        if (ownerOf[profileId] != msg.sender) revert NotProfileOwner(msg.sender, profileId);
        pubId = ++pubCount[profileId];
        actionModuleOf[profileId][pubId] = actionModule;
        bytes memory result =
            IPublicationActionModule(actionModule).initializePublicationAction(profileId, pubId, msg.sender, initData);
        emit PostCreated(profileId, pubId, actionModule, result);
    }

    /// @notice Acts on a publication as the owner of `params.actorProfileId`; forwards to its module.
    function act(PublicationActionParams calldata params) external returns (bytes memory result) {
        if (ownerOf[params.actorProfileId] != msg.sender) revert NotProfileOwner(msg.sender, params.actorProfileId);
        address module = actionModuleOf[params.publicationActedProfileId][params.publicationActedId];
        if (module == address(0) || module != params.actionModuleAddress) {
            revert ActionModuleNotEnabled(params.publicationActedProfileId, params.publicationActedId, params.actionModuleAddress);
        }
        result = IPublicationActionModule(module).processPublicationAction(
            Types.ProcessActionParams({
                publicationActedProfileId: params.publicationActedProfileId,
                publicationActedId: params.publicationActedId,
                actorProfileId: params.actorProfileId,
                actorProfileOwner: msg.sender,
                transactionExecutor: msg.sender,
                referrerProfileIds: params.referrerProfileIds,
                referrerPubIds: params.referrerPubIds,
                referrerPubTypes: new Types.PublicationType[](params.referrerProfileIds.length),
                actionModuleData: params.actionModuleData
            })
        );
        emit Acted(params, result);
    }
}
