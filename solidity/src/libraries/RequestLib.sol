// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ICoprocessorConsumer} from "../interfaces/ICoprocessorConsumer.sol";

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
    bytes signature; // 65 bytes (r, s, v), then the call tree of a composed response: 32-byte template ids
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

/// @notice Hashing, signature and callback-encoding rules for requests and responses.
/// @dev Note: the hot functions read straight from calldata in assembly (as solady does) rather than
/// copying structs into memory first; each gives exactly the result of the plain Solidity expression in
/// its NatSpec, which the tests check against that expression.
library RequestLib {
    /// @dev keccak256("Response(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash)")
    bytes32 internal constant RESPONSE_TYPEHASH =
        keccak256("Response(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash)");

    /// @dev The EIP-712 type of a response whose template called others (`ctx.call`): it commits to the
    /// template ids those calls ran to Ok, in the order they ended.
    bytes32 internal constant COMPOSED_RESPONSE_TYPEHASH = keccak256(
        "ComposedResponse(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash,bytes32[] calls)"
    );

    /// @dev The most template ids a response's call tree holds (the enclave's `MAX_CALLS_PER_RUN`).
    uint256 internal constant MAX_CALLS = 16;

    /// @dev The highest valid `Status` value.
    uint8 internal constant MAX_STATUS = uint8(Status.ChainDataInvalid);

    /// @dev The ABI size of a `Request`: nine static words.
    uint256 private constant REQUEST_BYTES = 0x120;

    /// @dev secp256k1n / 2: a larger `s` is the malleable twin of a valid signature (EIP-2).
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @dev The consumer callback's selector.
    bytes4 internal constant CALLBACK_SELECTOR = ICoprocessorConsumer.onCoprocessorResponse.selector;

    /// @notice The one-slot commitment stored for a pending request: `keccak256(abi.encode(request))`.
    /// @dev Note: hashes the nine calldata words as they are. A request whose words carry dirty high bits
    /// (which `abi.encode` would have refused) hashes to something no stored commitment can equal.
    function commitment(Request calldata request) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, request, REQUEST_BYTES)
            result := keccak256(m, REQUEST_BYTES)
        }
    }

    /// @notice The EIP-712 struct hash of a response (to be wrapped with the domain separator):
    /// `keccak256(abi.encode(RESPONSE_TYPEHASH, requestId, requestCommitment, status, keccak256(output)))`.
    function responseStructHash(bytes32 requestId, bytes32 requestCommitment, uint8 status, bytes calldata output)
        internal
        pure
        returns (bytes32 result)
    {
        bytes32 typeHash = RESPONSE_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, output.offset, output.length)
            let outputHash := keccak256(m, output.length)
            mstore(m, typeHash)
            mstore(add(m, 0x20), requestId)
            mstore(add(m, 0x40), requestCommitment)
            mstore(add(m, 0x60), and(status, 0xff))
            mstore(add(m, 0x80), outputHash)
            result := keccak256(m, 0xa0)
        }
    }

    /// @notice The EIP-712 digest of a response under `domainSeparator`:
    /// `MessageHashUtils.toTypedDataHash(domainSeparator, responseStructHash(...))`.
    function responseDigest(
        bytes32 domainSeparator,
        bytes32 requestId,
        bytes32 requestCommitment,
        uint8 status,
        bytes calldata output
    ) internal pure returns (bytes32 digest) {
        bytes32 structHash = responseStructHash(requestId, requestCommitment, status, output);
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, hex"1901")
            mstore(add(m, 0x02), domainSeparator)
            mstore(add(m, 0x22), structHash)
            digest := keccak256(m, 0x42)
        }
    }

    /// @notice The EIP-712 digest of a composed response under `domainSeparator`, `calls` being the call tree's
    /// template ids packed (32 bytes each, as EIP-712 encodes a `bytes32[]`):
    /// `toTypedDataHash(domainSeparator, keccak256(abi.encode(COMPOSED_RESPONSE_TYPEHASH, requestId,
    /// requestCommitment, status, keccak256(output), keccak256(calls))))`.
    function composedResponseDigest(
        bytes32 domainSeparator,
        bytes32 requestId,
        bytes32 requestCommitment,
        uint8 status,
        bytes calldata output,
        bytes calldata calls
    ) internal pure returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                COMPOSED_RESPONSE_TYPEHASH, requestId, requestCommitment, status, keccak256(output), keccak256(calls)
            )
        );
        return keccak256(abi.encodePacked(hex"1901", domainSeparator, structHash));
    }

    /// @notice A fulfilment's `signature` split into the 65-byte signature and the call tree after it (empty for
    /// a plain response); `ok` is false when what follows the signature is not 1 to MAX_CALLS template ids.
    function splitCalls(bytes calldata signature)
        internal
        pure
        returns (bytes calldata ecdsa, bytes calldata calls, bool ok)
    {
        if (signature.length <= 65) return (signature, signature[0:0], true);
        calls = signature[65:];
        ok = calls.length % 32 == 0 && calls.length <= MAX_CALLS * 32;
        ecdsa = signature[0:65];
    }

    /// @notice The signer of `digest`, or the zero address if `signature` is not a valid 65-byte `r ‖ s ‖ v`
    /// signature with a low `s` (the cases in which OpenZeppelin's `ECDSA.tryRecover` reports an error).
    function signer(bytes32 digest, bytes calldata signature) internal view returns (address result) {
        if (signature.length != 65) return address(0);
        assembly ("memory-safe") {
            let s := calldataload(add(signature.offset, 0x20))
            if iszero(gt(s, HALF_ORDER)) {
                let m := mload(0x40)
                mstore(m, digest)
                mstore(add(m, 0x20), byte(0, calldataload(add(signature.offset, 0x40))))
                mstore(add(m, 0x40), calldataload(signature.offset))
                mstore(add(m, 0x60), s)
                // The precompile returns nothing for an unrecoverable signature (a bad `v` included).
                if iszero(staticcall(gas(), 0x01, m, 0x80, m, 0x20)) { revert(0, 0) }
                if returndatasize() { result := mload(m) }
            }
        }
    }

    /// @notice `abi.encodeCall(ICoprocessorConsumer.onCoprocessorResponse, (requestId, status, output))`.
    function callbackData(bytes32 requestId, uint8 status, bytes calldata output)
        internal
        pure
        returns (bytes memory data)
    {
        bytes4 selector = CALLBACK_SELECTOR;
        assembly ("memory-safe") {
            data := mload(0x40)
            let length := output.length
            // selector, requestId, status, offset, length, output padded to whole words.
            let size := add(0x84, and(add(length, 0x1f), not(0x1f)))
            mstore(data, size)
            mstore(add(data, 0x20), selector)
            mstore(add(data, 0x24), requestId)
            mstore(add(data, 0x44), and(status, 0xff))
            mstore(add(data, 0x64), 0x60)
            mstore(add(data, 0x84), length)
            // Zero the last word first so the padding is clean, then copy the output over it.
            mstore(add(add(data, 0xa4), and(length, not(0x1f))), 0)
            calldatacopy(add(data, 0xa4), output.offset, length)
            // Keep the free memory pointer word-aligned (the encoding is 4 bytes past a word boundary).
            mstore(0x40, add(data, and(add(size, 0x3f), not(0x1f))))
        }
    }
}
