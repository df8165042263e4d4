// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {QuoteVerifier} from "../QuoteVerifier.sol";
import {IEnclaveRegistry} from "../interfaces/IEnclaveRegistry.sol";
import {SignedQuote} from "../libraries/QuoteLib.sol";

/// @notice A plain sync-mode consumer: anyone submits an enclave-signed median-price quote, the price is stored.
/// @dev Note: no request, no callback, no fee: the user fetched the quote from a node's quote endpoint
/// (`coprocessor quote`) and passes it here, as they would in a Uniswap v4 `hookData`.
contract SignedQuoteConsumer is QuoteVerifier {
    /// @notice Thrown when the quote answers another template.
    error WrongTemplate(bytes32 templateId);
    /// @notice Thrown when the quote answers another input.
    error WrongInput(bytes32 inputHash);

    /// @notice Emitted when a quoted price is stored.
    event PriceStored(bytes32 indexed nonce, address indexed signer, uint256 price, uint16 sources);

    /// @notice The template whose answers are accepted (median-price: `(uint256[] prices, uint16 maxDeviationBps)`
    /// in, `(uint256 median, uint16 accepted)` out).
    bytes32 public immutable templateId;

    /// @notice The last stored median, how many prices it was taken over, and the input it answered.
    uint256 public price;
    uint16 public sources;
    bytes32 public inputHash;

    constructor(IEnclaveRegistry registry_, address coprocessor_, bytes32 templateId_)
        QuoteVerifier(registry_, coprocessor_)
    {
        templateId = templateId_;
    }

    /// @notice Stores the median of `input` that the enclave quoted in `quoteData` (`abi.encode(SignedQuote)`).
    function submit(bytes calldata input, bytes calldata quoteData) external {
        SignedQuote memory sq = abi.decode(quoteData, (SignedQuote));
        if (sq.quote.templateId != templateId) revert WrongTemplate(sq.quote.templateId);
        if (sq.quote.inputHash != keccak256(input)) revert WrongInput(sq.quote.inputHash);
        _useQuote(sq);
        (uint256 median, uint16 accepted) = abi.decode(sq.output, (uint256, uint16));
        (price, sources, inputHash) = (median, accepted, sq.quote.inputHash);
        emit PriceStored(sq.quote.nonce, sq.signer, median, accepted);
    }
}
