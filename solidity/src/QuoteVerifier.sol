// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEnclaveRegistry} from "./interfaces/IEnclaveRegistry.sol";
import {IQuoteVerifier} from "./interfaces/IQuoteVerifier.sol";
import {QuoteLib, SignedQuote} from "./libraries/QuoteLib.sol";

/// @notice Base for contracts that take enclave-signed quotes inline (in calldata, `hookData`, ...).
/// @dev Note: `_useQuote` checks the quote and burns its nonce; the inheriting contract still checks that the
/// quote's `templateId` and `inputHash` are what it wants answered. A quote is public once broadcast: anyone
/// may use it first (it then fails for its requester as `QuoteReplayed`). To bind a quote to one user,
/// make the user part of the template's input and check `inputHash`.
abstract contract QuoteVerifier is IQuoteVerifier {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice The registry deciding which signers are attested enclaves.
    IEnclaveRegistry public immutable enclaveRegistry;

    /// @notice The Coprocessor whose EIP-712 domain quotes are signed in.
    address public immutable coprocessor;

    /// @dev The domain separator on the chain this contract was deployed on; recomputed after a fork.
    bytes32 private immutable _cachedSeparator;
    uint256 private immutable _cachedChainId;

    /// @inheritdoc IQuoteVerifier
    mapping(bytes32 nonce => bool) public quoteUsed;

    constructor(IEnclaveRegistry registry_, address coprocessor_) {
        enclaveRegistry = registry_;
        coprocessor = coprocessor_;
        _cachedSeparator = QuoteLib.domainSeparator(coprocessor_);
        _cachedChainId = block.chainid;
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     INTERNAL FUNCTIONS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Verifies `sq` (see `QuoteLib.verify`) and marks its nonce used; reverts `QuoteReplayed` the second time.
    function _useQuote(SignedQuote memory sq) internal {
        bytes32 nonce = sq.quote.nonce;
        if (quoteUsed[nonce]) revert QuoteReplayed(nonce);
        QuoteLib.verify(sq, enclaveRegistry, _quoteDomainSeparator());
        quoteUsed[nonce] = true;
    }

    /// @notice The Coprocessor's EIP-712 domain separator on the current chain.
    function _quoteDomainSeparator() internal view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedSeparator : QuoteLib.domainSeparator(coprocessor);
    }
}
