// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice A contract that accepts enclave-signed quotes inline (sync mode), each at most once.
interface IQuoteVerifier {
    /// @notice Thrown when the quote names another consumer contract.
    error WrongConsumer(address consumer);
    /// @notice Thrown when the quote was signed for another chain.
    error WrongChain(uint256 chainId);
    /// @notice Thrown when the quote's deadline has passed.
    error QuoteExpired(uint64 deadline);
    /// @notice Thrown when the output passed with the quote is not the one it was signed for.
    error OutputMismatch();
    /// @notice Thrown when the quote's anchor is not a block of this chain among the last 256.
    error AnchorMismatch(uint64 anchorBlock);
    /// @notice Thrown when the signature is malformed or was not made by the claimed signer over this quote.
    error InvalidQuoteSignature();
    /// @notice Thrown when the signer is not an active (registered, unexpired, unrevoked) enclave.
    error EnclaveNotActive(address signer);
    /// @notice Thrown when a quote's nonce was already used here.
    error QuoteReplayed(bytes32 nonce);

    /// @notice Whether the quote with `nonce` was already used here.
    /// @param nonce The nonce of the quote
    /// @return Whether a quote with that nonce was already used here
    function quoteUsed(bytes32 nonce) external view returns (bool);
}
