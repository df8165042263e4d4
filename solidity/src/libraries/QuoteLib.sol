// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {IEnclaveRegistry} from "../interfaces/IEnclaveRegistry.sol";
import {IQuoteVerifier} from "../interfaces/IQuoteVerifier.sol";

/// @notice What an enclave attests in sync mode: "template `templateId` on the input hashing to `inputHash`
/// gave the output hashing to `outputHash`", usable once by `consumer` on `chainId` until `deadline`.
/// @dev Note: signed as EIP-712 `Quote` in the Coprocessor's domain; the Python mirror is
/// `coprocessor/protocol.py` and golden vectors keep both in step. Only `Ok` outputs are ever quoted.
/// `anchorBlock`/`anchorHash` are the chain state the template could read (both zero: it could read none).
struct Quote {
    bytes32 templateId;
    bytes32 inputHash;
    bytes32 outputHash;
    address consumer;
    uint256 chainId;
    uint64 deadline;
    uint64 anchorBlock;
    bytes32 anchorHash;
    bytes32 nonce;
}

/// @notice A quote as a user passes it to a contract (e.g. in `hookData`): the quote, the output it
/// speaks for, the enclave that signed it and its 65-byte `r ‖ s ‖ v` signature.
struct SignedQuote {
    Quote quote;
    bytes output;
    address signer;
    bytes signature;
}

/// @notice Hashing and inline verification of enclave-signed quotes.
library QuoteLib {
    /// @dev The EIP-712 type of a quote.
    bytes32 internal constant QUOTE_TYPEHASH = keccak256(
        "Quote(bytes32 templateId,bytes32 inputHash,bytes32 outputHash,address consumer,uint256 chainId,uint64 deadline,uint64 anchorBlock,bytes32 anchorHash,bytes32 nonce)"
    );

    /// @dev OpenZeppelin's EIP712 domain type, and the Coprocessor's name and version in it.
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant NAME_HASH = keccak256("Coprocessor");
    bytes32 internal constant VERSION_HASH = keccak256("1");

    /// @notice The EIP-712 domain separator of the Coprocessor at `coprocessor` on this chain: quotes are
    /// signed in the same domain as responses (their type hashes differ, so no digest is both).
    function domainSeparator(address coprocessor) internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, coprocessor));
    }

    /// @notice The EIP-712 struct hash of `q`.
    function structHash(Quote memory q) internal pure returns (bytes32) {
        return keccak256(abi.encode(QUOTE_TYPEHASH, q));
    }

    /// @notice The digest the enclave signs for `q` in the domain `separator`.
    function digest(Quote memory q, bytes32 separator) internal pure returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(separator, structHash(q));
    }

    /// @notice Reverts unless `sq` is a quote for this contract and chain, not expired, anchored (if at all)
    /// to a block of this chain, for exactly `sq.output`, and signed by `sq.signer`, an enclave active in `registry`.
    /// @dev Note: replay protection is the caller's (see `QuoteVerifier`), as is checking that
    /// `templateId` and `inputHash` are what the caller wants answered. An anchor older than 256 blocks
    /// cannot be checked and is refused as `AnchorMismatch`.
    /// @param sq The signed quote.
    /// @param registry The registry of attested enclaves (the Coprocessor's).
    /// @param separator The Coprocessor's EIP-712 domain separator (`domainSeparator(coprocessor)`).
    function verify(SignedQuote memory sq, IEnclaveRegistry registry, bytes32 separator) internal view {
        Quote memory q = sq.quote;
        if (q.consumer != address(this)) revert IQuoteVerifier.WrongConsumer(q.consumer);
        if (q.chainId != block.chainid) revert IQuoteVerifier.WrongChain(q.chainId);
        if (block.timestamp > q.deadline) revert IQuoteVerifier.QuoteExpired(q.deadline);
        if (keccak256(sq.output) != q.outputHash) revert IQuoteVerifier.OutputMismatch();
        if (q.anchorHash != bytes32(0) || q.anchorBlock != 0) {
            // Both or neither: `blockhash` is zero for blocks it cannot see, which must never count as a match.
            if (q.anchorHash == bytes32(0) || blockhash(q.anchorBlock) != q.anchorHash) {
                revert IQuoteVerifier.AnchorMismatch(q.anchorBlock);
            }
        }
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest(q, separator), sq.signature);
        if (err != ECDSA.RecoverError.NoError || recovered != sq.signer) revert IQuoteVerifier.InvalidQuoteSignature();
        if (!registry.isActive(recovered)) revert IQuoteVerifier.EnclaveNotActive(recovered);
    }
}
