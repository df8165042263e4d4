// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SignedQuoteConsumer} from "../src/examples/SignedQuoteConsumer.sol";
import {QuoteVerifier} from "../src/QuoteVerifier.sol";
import {IEnclaveRegistry} from "../src/interfaces/IEnclaveRegistry.sol";
import {IQuoteVerifier} from "../src/interfaces/IQuoteVerifier.sol";
import {Quote, SignedQuote, QuoteLib} from "../src/libraries/QuoteLib.sol";
import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";
import {Fulfillment, Request} from "../src/libraries/RequestLib.sol";

import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice Exposes the verifier's internals, to measure one verification on its own.
contract QuoteHarness is QuoteVerifier {
    constructor(IEnclaveRegistry registry_, address coprocessor_) QuoteVerifier(registry_, coprocessor_) {}

    function use(SignedQuote calldata sq) external {
        _useQuote(sq);
    }

    function verify(SignedQuote calldata sq) external view {
        QuoteLib.verify(sq, enclaveRegistry, _quoteDomainSeparator());
    }

    function separator() external view returns (bytes32) {
        return _quoteDomainSeparator();
    }
}

/// @notice Sync mode: quotes signed by the registered enclave, checked inline by the example consumer.
contract SignedQuoteTest is CoprocessorTestBase {
    bytes32 internal constant MEDIAN_ID = keccak256("median-price bundle");
    uint64 internal constant LIFETIME = 5 minutes;

    SignedQuoteConsumer internal quoteConsumer;
    QuoteHarness internal harness;
    bytes internal input;
    bytes internal output;

    /// @dev Prepared in setUp (its own transaction), so gas tests start cold, as on chain.
    SignedQuote internal prepared;
    bytes internal preparedData;

    function setUp() public override {
        super.setUp();
        quoteConsumer = new SignedQuoteConsumer(registry, address(coprocessor), MEDIAN_ID);
        harness = new QuoteHarness(registry, address(coprocessor));
        input = abi.encode(_prices(), uint16(500));
        output = abi.encode(uint256(3012e8), uint16(3));
        preparedData = abi.encode(_signed(_quote(address(quoteConsumer)), output, enclaveKey));
        prepared = _signed(_quote(address(harness)), output, enclaveKey);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function _prices() internal pure returns (uint256[] memory p) {
        p = new uint256[](3);
        (p[0], p[1], p[2]) = (3012e8, 3015e8, 3009e8);
    }

    /// @dev A quote of `input` -> `output` for `consumer_`, valid for `LIFETIME`, not anchored.
    function _quote(address consumer_) internal view returns (Quote memory) {
        return Quote({
            templateId: MEDIAN_ID,
            inputHash: keccak256(input),
            outputHash: keccak256(output),
            consumer: consumer_,
            chainId: block.chainid,
            deadline: uint64(block.timestamp) + LIFETIME,
            anchorBlock: 0,
            anchorHash: bytes32(0),
            nonce: keccak256(abi.encode("nonce", consumer_, block.timestamp))
        });
    }

    /// @dev `q` with `output_`, signed by `key` in the Coprocessor's domain; the claimed signer is `key`'s address.
    function _signed(Quote memory q, bytes memory output_, uint256 key) internal view returns (SignedQuote memory) {
        bytes32 digest = QuoteLib.digest(q, QuoteLib.domainSeparator(address(coprocessor)));
        return SignedQuote({quote: q, output: output_, signer: vm.addr(key), signature: _sign(key, digest)});
    }

    function _submit(SignedQuote memory sq) internal {
        quoteConsumer.submit(input, abi.encode(sq));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         HAPPY PATH                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_submit_storesQuotedPrice() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        vm.expectEmit(address(quoteConsumer));
        emit SignedQuoteConsumer.PriceStored(sq.quote.nonce, enclave, 3012e8, 3);
        _submit(sq);
        assertEq(quoteConsumer.price(), 3012e8);
        assertEq(quoteConsumer.sources(), 3);
        assertEq(quoteConsumer.inputHash(), keccak256(input));
        assertTrue(quoteConsumer.quoteUsed(sq.quote.nonce));
    }

    function test_submit_acceptsAtExactDeadline() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        vm.warp(sq.quote.deadline);
        _submit(sq);
        assertEq(quoteConsumer.price(), 3012e8);
    }

    function test_submit_acceptsRecentAnchor() public {
        Quote memory q = _quote(address(quoteConsumer));
        (q.anchorBlock, q.anchorHash) = (uint64(block.number - 1), blockhash(block.number - 1));
        vm.roll(block.number + 200);
        _submit(_signed(q, output, enclaveKey));
        assertEq(quoteConsumer.price(), 3012e8);
    }

    function test_domainSeparator_isTheCoprocessors() public view {
        assertEq(QuoteLib.domainSeparator(address(coprocessor)), coprocessor.domainSeparator());
        assertEq(harness.separator(), coprocessor.domainSeparator());
    }

    function test_domainSeparator_followsAChainFork() public {
        vm.chainId(block.chainid + 1);
        assertEq(harness.separator(), coprocessor.domainSeparator());
        _submit(_signed(_quote(address(quoteConsumer)), output, enclaveKey));
        assertEq(quoteConsumer.price(), 3012e8);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         REJECTIONS                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_submit_revertsWhen_forgedSignature() public {
        (, uint256 forgerKey) = makeAddrAndKey("forger");
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, forgerKey);
        sq.signer = enclave; // claims the registered enclave signed it
        vm.expectRevert(IQuoteVerifier.InvalidQuoteSignature.selector);
        _submit(sq);
    }

    function test_submit_revertsWhen_malformedSignature() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        sq.signature = hex"1234";
        vm.expectRevert(IQuoteVerifier.InvalidQuoteSignature.selector);
        _submit(sq);
    }

    function test_submit_revertsWhen_signedFieldTampered() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        sq.quote.deadline += 1 days; // a longer life than the enclave signed
        vm.expectRevert(IQuoteVerifier.InvalidQuoteSignature.selector);
        _submit(sq);
    }

    function test_submit_revertsWhen_outputTampered() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        sq.output = abi.encode(uint256(1), uint16(3));
        vm.expectRevert(IQuoteVerifier.OutputMismatch.selector);
        _submit(sq);
    }

    function test_submit_revertsWhen_outputAndHashTampered() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        sq.output = abi.encode(uint256(1), uint16(3));
        sq.quote.outputHash = keccak256(sq.output);
        vm.expectRevert(IQuoteVerifier.InvalidQuoteSignature.selector);
        _submit(sq);
    }

    function test_submit_revertsWhen_expired() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        vm.warp(sq.quote.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.QuoteExpired.selector, sq.quote.deadline));
        _submit(sq);
    }

    function test_submit_revertsWhen_replayed() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        _submit(sq);
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.QuoteReplayed.selector, sq.quote.nonce));
        _submit(sq);
    }

    function test_submit_revertsWhen_wrongConsumer() public {
        SignedQuote memory sq = _signed(_quote(address(harness)), output, enclaveKey);
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.WrongConsumer.selector, address(harness)));
        _submit(sq);
    }

    function test_submit_revertsWhen_wrongChain() public {
        Quote memory q = _quote(address(quoteConsumer));
        q.chainId = 1;
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.WrongChain.selector, 1));
        _submit(_signed(q, output, enclaveKey));
    }

    function test_submit_revertsWhen_signedInAnotherDeployment() public {
        Quote memory q = _quote(address(quoteConsumer));
        bytes32 otherDomain = QuoteLib.domainSeparator(makeAddr("another coprocessor"));
        SignedQuote memory sq = SignedQuote(q, output, enclave, _sign(enclaveKey, QuoteLib.digest(q, otherDomain)));
        vm.expectRevert(IQuoteVerifier.InvalidQuoteSignature.selector);
        _submit(sq);
    }

    function test_submit_revertsWhen_signerNotRegistered() public {
        (address stray, uint256 strayKey) = makeAddrAndKey("unregistered enclave");
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.EnclaveNotActive.selector, stray));
        _submit(_signed(_quote(address(quoteConsumer)), output, strayKey));
    }

    function test_submit_revertsWhen_signerRevoked() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        vm.prank(owner);
        registry.revokeEnclave(enclave);
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.EnclaveNotActive.selector, enclave));
        _submit(sq);
    }

    function test_submit_revertsWhen_signerExpired() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        sq.quote.deadline = type(uint64).max;
        sq = _signed(sq.quote, output, enclaveKey);
        vm.warp(block.timestamp + ENCLAVE_TTL + 1);
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.EnclaveNotActive.selector, enclave));
        _submit(sq);
    }

    function test_submit_revertsWhen_anchorNotThisChains() public {
        Quote memory q = _quote(address(quoteConsumer));
        (q.anchorBlock, q.anchorHash) = (uint64(block.number - 1), keccak256("a block of another chain"));
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.AnchorMismatch.selector, q.anchorBlock));
        _submit(_signed(q, output, enclaveKey));
    }

    function test_submit_revertsWhen_anchorOlderThan256Blocks() public {
        Quote memory q = _quote(address(quoteConsumer));
        (q.anchorBlock, q.anchorHash) = (uint64(block.number - 1), blockhash(block.number - 1));
        vm.roll(block.number + 256);
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.AnchorMismatch.selector, q.anchorBlock));
        _submit(_signed(q, output, enclaveKey));
    }

    function test_submit_revertsWhen_anchorBlockWithoutHash() public {
        Quote memory q = _quote(address(quoteConsumer));
        (q.anchorBlock, q.anchorHash) = (uint64(block.number + 1000), bytes32(0)); // blockhash of it is zero too
        vm.expectRevert(abi.encodeWithSelector(IQuoteVerifier.AnchorMismatch.selector, q.anchorBlock));
        _submit(_signed(q, output, enclaveKey));
    }

    function test_submit_revertsWhen_wrongTemplate() public {
        Quote memory q = _quote(address(quoteConsumer));
        q.templateId = TEMPLATE_ID;
        vm.expectRevert(abi.encodeWithSelector(SignedQuoteConsumer.WrongTemplate.selector, TEMPLATE_ID));
        _submit(_signed(q, output, enclaveKey));
    }

    function test_submit_revertsWhen_wrongInput() public {
        SignedQuote memory sq = _signed(_quote(address(quoteConsumer)), output, enclaveKey);
        vm.expectRevert(abi.encodeWithSelector(SignedQuoteConsumer.WrongInput.selector, keccak256(input)));
        quoteConsumer.submit(abi.encode(_prices(), uint16(1)), abi.encode(sq));
    }

    /// @dev One key signs both responses and quotes in one domain: neither signature passes as the other.
    function test_signatures_doNotCrossBetweenResponsesAndQuotes() public {
        Request memory r = _ask();
        bytes memory responseSig = _sign(enclaveKey, _digest(r, 0, output));
        Quote memory q = _quote(address(quoteConsumer));
        vm.expectRevert(IQuoteVerifier.InvalidQuoteSignature.selector);
        _submit(SignedQuote(q, output, enclave, responseSig));

        bytes memory quoteSig = _signed(q, output, enclaveKey).signature;
        vm.expectPartialRevert(ICoprocessor.EnclaveNotActive.selector); // recovers some other address
        coprocessor.fulfill(_batch(Fulfillment(r, 0, output, quoteSig)));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            GAS                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_verify_gas() public {
        harness.verify(prepared);
        vm.snapshotGasLastCall("QuoteLib", "verify (view)");
    }

    function test_useQuote_gas() public {
        harness.use(prepared);
        vm.snapshotGasLastCall("QuoteLib", "useQuote (verify + burn nonce)");
    }

    function test_submit_gas() public {
        quoteConsumer.submit(input, preparedData);
        vm.snapshotGasLastCall("QuoteLib", "SignedQuoteConsumer.submit (decode, verify, store price)");
    }
}
