// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The part of Lens v2's `Types` library an Open Action module sees.
/// @dev Mirrors Lens v2's `Types` (same names, field order and types) so the module's ABI is what the
/// real LensHub calls: `processPublicationAction` takes `Types.ProcessActionParams` as its one argument, and
/// an ABI-encoded struct is only compatible if every field matches. Only what a publication action needs.
library Types {
    /// @notice Kinds of publication, as in Lens v2.
    enum PublicationType {
        Nonexistent,
        Post,
        Comment,
        Mirror,
        Quote
    }

    /// @notice What LensHub passes to an action module when a profile acts on a publication.
    /// @param publicationActedProfileId The profile that published the publication acted on.
    /// @param publicationActedId The publication acted on.
    /// @param actorProfileId The profile acting.
    /// @param actorProfileOwner The owner of the acting profile.
    /// @param transactionExecutor Who sent the transaction: the owner or a delegated executor.
    /// @param referrerProfileIds Profiles that referred the actor (mirrors, quotes, comments).
    /// @param referrerPubIds Publications that referred the actor, one for each referrer profile.
    /// @param referrerPubTypes Kind of each referrer publication.
    /// @param actionModuleData Data from the actor for the module.
    struct ProcessActionParams {
        uint256 publicationActedProfileId;
        uint256 publicationActedId;
        uint256 actorProfileId;
        address actorProfileOwner;
        address transactionExecutor;
        uint256[] referrerProfileIds;
        uint256[] referrerPubIds;
        PublicationType[] referrerPubTypes;
        bytes actionModuleData;
    }
}
