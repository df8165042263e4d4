// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Everything the chain commits to when a consumer asks for work.
/// @dev Note: the Python mirror is `coprocessor/protocol.py`; golden vectors keep both in step.
struct Request {
    bytes32 requestId;
    address consumer;
    bytes32 templateId;
    bytes32 inputHash;
    uint32 callbackGasLimit;
    uint96 fee;
    uint64 deadline;
    uint64 anchorBlock;
    bytes32 anchorHash;
}

/// @notice A signed answer to one request, as submitted by a node.
struct Fulfillment {
    Request request;
    uint8 status;
    bytes output;
    bytes signature;
}

/// @notice Outcome of running a template. Error statuses carry a short UTF-8 reason as output.
enum Status {
    Ok,
    TemplateError,
    InvalidInput,
    Timeout,
    ResourceLimit,
    // The host supplied chain data that failed verification against the request's anchor block hash.
    ChainDataInvalid
}

/// @notice Hashing rules for requests and responses.
library RequestLib {
    /// @dev keccak256("Response(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash)")
    bytes32 internal constant RESPONSE_TYPEHASH =
        keccak256("Response(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash)");

    /// @dev The highest valid `Status` value.
    uint8 internal constant MAX_STATUS = uint8(Status.ChainDataInvalid);

    /// @notice The one-slot commitment stored for a pending request.
    function commitment(Request calldata request) internal pure returns (bytes32) {
        return keccak256(abi.encode(request));
    }

    /// @notice The EIP-712 struct hash of a response (to be wrapped with the domain separator).
    function responseStructHash(bytes32 requestId, bytes32 requestCommitment, uint8 status, bytes calldata output)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(RESPONSE_TYPEHASH, requestId, requestCommitment, status, keccak256(output)));
    }
}
