// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Types} from "./LensTypes.sol";

/// @notice The Lens v2 Open Action interface (same selectors as Lens v2's `IPublicationActionModule`).
/// @dev LensHub calls both functions: the first when a publication is published with the module attached,
/// the second each time a profile acts on it. Neither is payable on LensHub, so a module pays its own costs.
interface IPublicationActionModule {
    /// @notice Sets the module up for a new publication.
    /// @param profileId The profile publishing.
    /// @param pubId The publication being published.
    /// @param transactionExecutor Who sent the publishing transaction.
    /// @param data The publisher's settings for the module.
    /// @return ABI-encoded data LensHub puts in its event, for indexers and UIs.
    function initializePublicationAction(uint256 profileId, uint256 pubId, address transactionExecutor, bytes calldata data)
        external
        returns (bytes memory);

    /// @notice Runs the action for a profile acting on a publication.
    /// @return ABI-encoded data LensHub puts in its event, for indexers and UIs.
    function processPublicationAction(Types.ProcessActionParams calldata processActionParams)
        external
        returns (bytes memory);
}
