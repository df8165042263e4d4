// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {ICoprocessorConsumer} from "../src/interfaces/ICoprocessorConsumer.sol";
import {Request, RequestLib} from "../src/libraries/RequestLib.sol";

/// @notice Exposes RequestLib's calldata functions.
contract RequestLibHarness {
    function commitment(Request calldata r) external pure returns (bytes32) {
        return RequestLib.commitment(r);
    }

    /// @dev What `commitment` used to be.
    function abiCommitment(Request calldata r) external pure returns (bytes32) {
        return keccak256(abi.encode(r));
    }

    function responseStructHash(bytes32 requestId, bytes32 c, uint8 status, bytes calldata output)
        external
        pure
        returns (bytes32)
    {
        return RequestLib.responseStructHash(requestId, c, status, output);
    }

    function responseDigest(bytes32 domain, bytes32 requestId, bytes32 c, uint8 status, bytes calldata output)
        external
        pure
        returns (bytes32)
    {
        return RequestLib.responseDigest(domain, requestId, c, status, output);
    }

    function signer(bytes32 digest, bytes calldata signature) external view returns (address) {
        return RequestLib.signer(digest, signature);
    }

    /// @dev Allocates after the encoding, so a misplaced free memory pointer would show in the result.
    function callbackData(bytes32 requestId, uint8 status, bytes calldata output)
        external
        pure
        returns (bytes memory data, bytes memory next)
    {
        data = RequestLib.callbackData(requestId, status, output);
        next = abi.encodePacked(bytes32(type(uint256).max));
    }

    /// @dev Encodes twice in the same (dirty) memory, as `fulfill` does from one item to the next.
    function callbackDataOnDirtyMemory(bytes32 requestId, uint8 status, bytes calldata output)
        external
        pure
        returns (bytes memory data)
    {
        uint256 freeMemory;
        assembly ("memory-safe") {
            freeMemory := mload(0x40)
            // Fill the next 16 KiB + 256 bytes with ones.
            for { let p := freeMemory } lt(p, add(freeMemory, 0x4100)) { p := add(p, 0x20) } {
                mstore(p, not(0))
            }
        }
        data = RequestLib.callbackData(requestId, status, output);
    }
}

/// @notice Each assembly function of RequestLib equals the Solidity expression its NatSpec names.
contract RequestLibTest is Test {
    /// @dev secp256k1 group order.
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    RequestLibHarness internal harness = new RequestLibHarness();

    function testFuzz_commitment_isKeccakOfAbiEncode(Request memory r) public view {
        assertEq(harness.commitment(r), keccak256(abi.encode(r)));
    }

    /// @dev A request whose words carry dirty high bits never hashes to the clean request's commitment, so it
    /// is refused as before, when `abi.encode` reverted on it.
    function testFuzz_commitment_dirtyWordsDiffer(Request memory r, uint96 dirt) public view {
        vm.assume(dirt != 0);
        bytes memory data = abi.encodeCall(RequestLibHarness.commitment, (r));
        // The consumer word sits at 4 + 32; dirt its 12 high bytes.
        assembly ("memory-safe") {
            let p := add(data, add(0x20, 36))
            mstore(p, or(mload(p), shl(160, dirt)))
        }
        (bool ok, bytes memory ret) = address(harness).staticcall(data);
        assertTrue(ok);
        assertNotEq(abi.decode(ret, (bytes32)), keccak256(abi.encode(r)));

        // The old `keccak256(abi.encode(r))` on the same calldata reverted.
        bytes4 old = RequestLibHarness.abiCommitment.selector;
        assembly ("memory-safe") {
            mstore(add(data, 0x20), or(and(mload(add(data, 0x20)), not(shl(224, 0xffffffff))), old))
        }
        (ok,) = address(harness).staticcall(data);
        assertFalse(ok);
    }

    function testFuzz_responseStructHash_matchesAbiEncode(bytes32 id, bytes32 c, uint8 status, bytes memory output)
        public
        view
    {
        assertEq(
            harness.responseStructHash(id, c, status, output),
            keccak256(abi.encode(RequestLib.RESPONSE_TYPEHASH, id, c, status, keccak256(output)))
        );
    }

    function testFuzz_responseDigest_isTypedDataHash(
        bytes32 domain,
        bytes32 id,
        bytes32 c,
        uint8 status,
        bytes memory output
    ) public view {
        bytes32 structHash = keccak256(abi.encode(RequestLib.RESPONSE_TYPEHASH, id, c, status, keccak256(output)));
        assertEq(
            harness.responseDigest(domain, id, c, status, output), MessageHashUtils.toTypedDataHash(domain, structHash)
        );
    }

    /// @dev Agrees with OpenZeppelin's `tryRecover` on real signatures, both `s` halves and every `v`.
    function testFuzz_signer_matchesOpenZeppelin(uint256 key, bytes32 digest, uint8 v, bool flipS) public view {
        key = bound(key, 1, N - 1);
        (uint8 realV, bytes32 r, bytes32 s) = vm.sign(key, digest);
        if (flipS) s = bytes32(N - uint256(s));
        _assertSameSigner(digest, abi.encodePacked(r, s, realV));
        _assertSameSigner(digest, abi.encodePacked(r, s, v));
        assertEq(harness.signer(digest, abi.encodePacked(r, s, realV)), flipS ? address(0) : vm.addr(key));
    }

    /// @dev Agrees with OpenZeppelin's `tryRecover` on garbage of any length.
    function testFuzz_signer_matchesOpenZeppelinOnGarbage(bytes32 digest, bytes memory signature) public view {
        _assertSameSigner(digest, signature);
    }

    function test_signer_refusesEveryLengthButSixtyFive() public view {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(1, keccak256("x"));
        bytes memory good = abi.encodePacked(r, s, v);
        assertEq(harness.signer(keccak256("x"), good), vm.addr(1));
        // The EIP-2098 short form (r, vs) is refused too, as by ECDSA.tryRecover(bytes32, bytes).
        bytes32 vs = bytes32(uint256(s) | (uint256(v - 27) << 255));
        assertEq(harness.signer(keccak256("x"), abi.encodePacked(r, vs)), address(0));
        assertEq(harness.signer(keccak256("x"), abi.encodePacked(good, uint8(0))), address(0));
        assertEq(harness.signer(keccak256("x"), ""), address(0));
    }

    function testFuzz_callbackData_isAbiEncodeCall(bytes32 id, uint8 status, bytes memory output) public view {
        bytes memory expected = abi.encodeCall(ICoprocessorConsumer.onCoprocessorResponse, (id, status, output));
        (bytes memory data, bytes memory next) = harness.callbackData(id, status, output);
        assertEq(data, expected);
        assertEq(next, abi.encodePacked(bytes32(type(uint256).max)));
        assertEq(harness.callbackDataOnDirtyMemory(id, status, output), expected);
    }

    function _assertSameSigner(bytes32 digest, bytes memory signature) internal view {
        (address expected, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError) expected = address(0);
        assertEq(harness.signer(digest, signature), expected);
    }
}
