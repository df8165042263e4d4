// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISponsoredConsumer} from "../interfaces/ISponsoredConsumer.sol";

/// @notice A plain consumer of sponsored jobs (HTTP-triggered, paid by a sponsor through `Sponsorships`): each
/// result is stored under its request id for anyone to read.
contract SponsoredJobConsumer is ISponsoredConsumer {
    struct Response {
        bool received;
        address sponsor;
        uint8 status;
        bytes output;
    }

    /// @notice Thrown when anyone but the Sponsorships contract delivers a result.
    error OnlySponsorships(address caller);

    /// @notice Emitted when a result arrives.
    event Answered(bytes32 indexed requestId, address indexed sponsor, uint8 status, bytes output);

    /// @notice The only contract that may deliver results.
    address public immutable sponsorships;

    /// @notice Results by request id.
    mapping(bytes32 requestId => Response) public responses;

    /// @notice How many results arrived, to show each job is answered once.
    uint256 public callbackCount;

    constructor(address sponsorships_) {
        sponsorships = sponsorships_;
    }

    /// @inheritdoc ISponsoredConsumer
    function onSponsoredJob(bytes32 requestId, address sponsor, uint8 status, bytes calldata output) external {
        if (msg.sender != sponsorships) revert OnlySponsorships(msg.sender);
        ++callbackCount;
        responses[requestId] = Response({received: true, sponsor: sponsor, status: status, output: output});
        emit Answered(requestId, sponsor, status, output);
    }

    /// @notice The stored result of `requestId`.
    function response(bytes32 requestId) external view returns (Response memory) {
        return responses[requestId];
    }
}
