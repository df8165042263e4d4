// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdInvariant} from "forge-std/StdInvariant.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Vm} from "forge-std/Vm.sol";

import {Coprocessor} from "../src/Coprocessor.sol";
import {CoprocessorClient} from "../src/CoprocessorClient.sol";
import {Sponsorships} from "../src/Sponsorships.sol";
import {SponsoredJobConsumer} from "../src/examples/SponsoredJobConsumer.sol";
import {ICoprocessor} from "../src/interfaces/ICoprocessor.sol";
import {ISponsoredConsumer} from "../src/interfaces/ISponsoredConsumer.sol";
import {ISponsorships} from "../src/interfaces/ISponsorships.sol";
import {Request, Fulfillment} from "../src/libraries/RequestLib.sol";

import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice A sponsored-job consumer that records what it is given, or misbehaves on demand.
contract JobConsumer is ISponsoredConsumer {
    /// @notice What the callback does.
    enum Mode {
        Store,
        Revert,
        BurnGas,
        Probe
    }

    address public immutable sponsorships;

    Mode public mode;
    /// @notice `gasleft()` at the first statement of the last callback that returned.
    uint256 public gasAtEntry;
    uint256 public calls;
    bytes32 public lastRequestId;
    address public lastSponsor;
    uint8 public lastStatus;
    bytes public lastOutput;

    constructor(address sponsorships_) {
        sponsorships = sponsorships_;
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @inheritdoc ISponsoredConsumer
    function onSponsoredJob(bytes32 requestId, address sponsor, uint8 status, bytes calldata output) external {
        uint256 g = gasleft();
        require(msg.sender == sponsorships, "only sponsorships");
        Mode m = mode;
        if (m == Mode.Revert) revert("consumer says no");
        if (m == Mode.BurnGas) {
            uint256 x;
            while (true) {
                x = uint256(keccak256(abi.encode(x)));
            }
        }
        gasAtEntry = g;
        ++calls;
        if (m == Mode.Probe) return;
        lastRequestId = requestId;
        lastSponsor = sponsor;
        lastStatus = status;
        lastOutput = output;
    }
}

/// @notice Refuses ether.
contract EtherRefuser {
    receive() external payable {
        revert("no ether");
    }
}

/// @notice The shared stack (registry, enclave, templates, Coprocessor with a non-zero `minFee`) plus a Sponsorships
/// contract, a recording consumer, a sponsor with a Signer key (an HTTP client's key) and a Relayed key (an API key
/// checked by the node, `relayer`), and helpers to build, sign, submit and answer jobs as a client and a node would.
abstract contract SponsorshipsTestBase is CoprocessorTestBase {
    uint96 internal constant MIN_FEE = 0.001 ether;
    /// @dev What a job of the paid template costs: the Coprocessor's minimum fee and the author fee.
    uint96 internal constant JOB_FEE = MIN_FEE + AUTHOR_FEE;
    uint32 internal constant CALLBACK_GAS = 200_000;
    uint64 internal constant JOB_TIMEOUT = 30 minutes;
    uint64 internal constant JOB_VALIDITY = 10 minutes;
    uint32 internal constant WINDOW = 1 hours;
    bytes internal constant OUTPUT = hex"000000000000000000000000000000000000000000000000000000000004cb2f";
    bytes32 internal constant API_KEY_ID = keccak256("api-key:acme-prod");

    bytes internal input = abi.encode("ETH/USD");
    address internal sponsor = makeAddr("sponsor");
    /// @dev The node's account: the relayer of `API_KEY_ID`.
    address internal relayer = makeAddr("relayer");
    address internal clientSigner;
    uint256 internal clientKey;
    bytes32 internal signerKeyId;

    Sponsorships internal sp;
    JobConsumer internal jobConsumer;

    function setUp() public virtual override {
        super.setUp();
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 16 * 1024, 2_000_000, 7 days, MIN_FEE));
        sp = new Sponsorships(coprocessor);
        jobConsumer = new JobConsumer(address(sp));
        (clientSigner, clientKey) = makeAddrAndKey("client");
        signerKeyId = bytes32(uint256(uint160(clientSigner)));
        vm.deal(sponsor, 100 ether);
        vm.deal(stranger, 100 ether);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           KEYS                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice A Signer key's terms: any consumer and template, one job's fee at most, ten jobs' allowance, no rate
    /// limit, no expiry.
    function _signerConfig() internal pure returns (ISponsorships.KeyConfig memory) {
        return ISponsorships.KeyConfig({
            kind: ISponsorships.KeyKind.Signer,
            relayer: address(0),
            consumer: address(0),
            templateId: bytes32(0),
            maxFeePerJob: JOB_FEE,
            allowance: 10 * JOB_FEE,
            maxJobsPerWindow: 0,
            window: 0,
            expiresAt: 0
        });
    }

    /// @notice A Relayed key's terms, `relayer` its relayer, otherwise as `_signerConfig`.
    function _relayedConfig() internal view returns (ISponsorships.KeyConfig memory c) {
        c = _signerConfig();
        c.kind = ISponsorships.KeyKind.Relayed;
        c.relayer = relayer;
    }

    function _setKey(bytes32 keyId, ISponsorships.KeyConfig memory config) internal {
        vm.prank(sponsor);
        sp.setKey(keyId, config);
    }

    /// @notice `sponsor` deposits `amount` and sets both keys with their default terms.
    function _fund(uint256 amount) internal {
        vm.prank(sponsor);
        sp.deposit{value: amount}();
        _setKey(signerKeyId, _signerConfig());
        _setKey(API_KEY_ID, _relayedConfig());
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           JOBS                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice A job of the paid template for `jobConsumer`, valid for `JOB_VALIDITY`.
    function _job(bytes32 keyId, uint256 nonce) internal view returns (ISponsorships.Job memory) {
        return ISponsorships.Job({
            sponsor: sponsor,
            keyId: keyId,
            consumer: address(jobConsumer),
            templateId: PAID_TEMPLATE_ID,
            input: input,
            callbackGas: CALLBACK_GAS,
            timeout: JOB_TIMEOUT,
            nonce: nonce,
            deadline: uint64(block.timestamp) + JOB_VALIDITY
        });
    }

    /// @notice `key`'s signature of `job`, as an HTTP client's eth-account would make it.
    function _signJob(uint256 key, ISponsorships.Job memory job) internal view returns (bytes memory) {
        return _sign(key, sp.jobDigest(job));
    }

    /// @notice Submits `job` from the current caller (prank before calling) and rebuilds its request from the log.
    function _submit(ISponsorships.Job memory job, bytes memory signature) internal returns (Request memory r) {
        vm.recordLogs();
        bytes32 requestId = sp.submit(job, signature);
        r = _requestFromLogs(vm.getRecordedLogs());
        assertEq(r.requestId, requestId, "submit returns the request id");
    }

    /// @notice Submits a job under the Signer key, signed by the client, relayed by a stranger.
    function _submitSigned(uint256 nonce) internal returns (Request memory) {
        ISponsorships.Job memory job = _job(signerKeyId, nonce);
        bytes memory signature = _signJob(clientKey, job);
        vm.prank(stranger);
        return _submit(job, signature);
    }

    /// @notice Submits a job under the Relayed key, from its relayer.
    function _submitRelayed(uint256 nonce) internal returns (Request memory) {
        ISponsorships.Job memory job = _job(API_KEY_ID, nonce);
        vm.prank(relayer);
        return _submit(job, "");
    }

    /// @notice Settles `r` with a response signed by the registered enclave.
    function _fulfil(Request memory r, uint8 status, bytes memory output) internal {
        coprocessor.fulfill(_batch(_fulfillment(r, status, output, enclaveKey)));
    }

    /// @notice The request gas a job of `callbackGas` asks for.
    function _requestGas(uint32 callbackGas) internal view returns (uint32) {
        return callbackGas + callbackGas / 64 + sp.CALLBACK_OVERHEAD();
    }

    function _allowance(bytes32 keyId) internal view returns (uint96) {
        (ISponsorships.KeyConfig memory c,) = sp.keyOf(sponsor, keyId);
        return c.allowance;
    }

    /// @notice The ether this contract holds or has credited at the Coprocessor covers `sponsor`'s balance.
    function _assertSolvent() internal view {
        assertGe(address(sp).balance + coprocessor.balanceOf(address(sp)), sp.balanceOf(sponsor), "solvent");
    }
}

/// @notice Unit tests of sponsorships: balances, keys of both kinds and their limits, submission, settlement through
/// the consumer, refunds of failed and expired jobs.
contract SponsorshipsTest is SponsorshipsTestBase {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     DEPOSIT, WITHDRAW                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_constructor_setsCoprocessorTemplateRegistryAndDomain() public view {
        assertEq(address(sp.coprocessor()), address(coprocessor));
        assertEq(address(sp.templateRegistry()), address(templates));
        assertEq(sp.domainSeparator(), _domainSeparator("Sponsorships", block.chainid, address(sp)));
    }

    function test_deposit_creditsTheSender() public {
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.Deposited(sponsor, 1 ether, 1 ether);
        vm.prank(sponsor);
        sp.deposit{value: 1 ether}();
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.Deposited(sponsor, 0.5 ether, 1.5 ether);
        vm.prank(sponsor);
        sp.deposit{value: 0.5 ether}();
        assertEq(sp.balanceOf(sponsor), 1.5 ether);
        assertEq(sp.balanceOf(stranger), 0);
        assertEq(address(sp).balance, 1.5 ether);
    }

    function test_withdraw_sendsFromTheFreeBalance() public {
        vm.prank(sponsor);
        sp.deposit{value: 1 ether}();
        address payable to = payable(makeAddr("to"));
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.Withdrawn(sponsor, to, 0.4 ether);
        vm.prank(sponsor);
        sp.withdraw(0.4 ether, to);
        assertEq(to.balance, 0.4 ether);
        assertEq(sp.balanceOf(sponsor), 0.6 ether);
        // Only the sponsor's own balance: a stranger has none.
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InsufficientBalance.selector, 0, 1));
        vm.prank(stranger);
        sp.withdraw(1, payable(stranger));
    }

    function test_withdraw_cannotTakeCommittedFunds() public {
        _fund(2 * JOB_FEE);
        _submitSigned(0);
        // One job's fee is in flight at the Coprocessor: only the other is free.
        assertEq(sp.balanceOf(sponsor), JOB_FEE);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InsufficientBalance.selector, JOB_FEE, 2 * JOB_FEE));
        vm.prank(sponsor);
        sp.withdraw(2 * JOB_FEE, payable(sponsor));
        vm.prank(sponsor);
        sp.withdraw(JOB_FEE, payable(sponsor));
        assertEq(sp.balanceOf(sponsor), 0);
        assertEq(address(sp).balance, 0);
        // And the committed fee cannot pay another job either.
        ISponsorships.Job memory job = _job(signerKeyId, 1);
        bytes memory signature = _signJob(clientKey, job);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InsufficientBalance.selector, 0, JOB_FEE));
        sp.submit(job, signature);
    }

    function test_withdraw_revertsWhenTheRecipientRefusesEther() public {
        vm.prank(sponsor);
        sp.deposit{value: 1 ether}();
        address refuser = address(new EtherRefuser());
        vm.expectRevert(ISponsorships.TransferFailed.selector);
        vm.prank(sponsor);
        sp.withdraw(1 ether, payable(refuser));
        assertEq(sp.balanceOf(sponsor), 1 ether);
    }

    function test_withdraw_pullsCreditedRefundsFromTheCoprocessor() public {
        _fund(JOB_FEE);
        Request memory r = _submitSigned(0);
        vm.warp(r.deadline + 1);
        sp.reclaim(r);
        assertEq(address(sp).balance, 0);
        assertEq(coprocessor.balanceOf(address(sp)), JOB_FEE);
        uint256 before = sponsor.balance;
        vm.prank(sponsor);
        sp.withdraw(JOB_FEE, payable(sponsor));
        assertEq(sponsor.balance, before + JOB_FEE);
        assertEq(coprocessor.balanceOf(address(sp)), 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            KEYS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_setKey_storesEveryTermOfBothKinds() public {
        ISponsorships.KeyConfig memory c = ISponsorships.KeyConfig({
            kind: ISponsorships.KeyKind.Relayed,
            relayer: relayer,
            consumer: address(jobConsumer),
            templateId: PAID_TEMPLATE_ID,
            maxFeePerJob: 2 * JOB_FEE,
            allowance: 7 * JOB_FEE,
            maxJobsPerWindow: 5,
            window: WINDOW,
            expiresAt: uint40(block.timestamp + 1 days)
        });
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.KeySet(sponsor, API_KEY_ID, c);
        _setKey(API_KEY_ID, c);
        (ISponsorships.KeyConfig memory got, uint16 jobsInWindow) = sp.keyOf(sponsor, API_KEY_ID);
        assertEq(keccak256(abi.encode(got)), keccak256(abi.encode(c)));
        assertEq(jobsInWindow, 0);

        _setKey(signerKeyId, _signerConfig());
        (got,) = sp.keyOf(sponsor, signerKeyId);
        assertEq(keccak256(abi.encode(got)), keccak256(abi.encode(_signerConfig())));
        // Keys are the sponsor's own: another sponsor's key of the same id is not set.
        (got,) = sp.keyOf(stranger, signerKeyId);
        assertEq(uint8(got.kind), uint8(ISponsorships.KeyKind.None));
    }

    function test_setKey_revertsOnInvalidTerms() public {
        ISponsorships.KeyConfig memory c = _signerConfig();
        c.kind = ISponsorships.KeyKind.None;
        vm.expectRevert(ISponsorships.InvalidKeyKind.selector);
        sp.setKey(signerKeyId, c);

        // A Signer key's id is its address.
        bytes32 notAnAddress = bytes32(uint256(1) << 160 | uint160(clientSigner));
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidKeyId.selector, notAnAddress));
        sp.setKey(notAnAddress, _signerConfig());
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidKeyId.selector, bytes32(0)));
        sp.setKey(bytes32(0), _relayedConfig());

        c = _signerConfig();
        c.relayer = relayer;
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidRelayer.selector, relayer));
        sp.setKey(signerKeyId, c);
        c = _relayedConfig();
        c.relayer = address(0);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidRelayer.selector, address(0)));
        sp.setKey(API_KEY_ID, c);

        c = _signerConfig();
        c.window = WINDOW;
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidRateLimit.selector, 0, WINDOW));
        sp.setKey(signerKeyId, c);
        c = _signerConfig();
        c.maxJobsPerWindow = 3;
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidRateLimit.selector, 3, 0));
        sp.setKey(signerKeyId, c);

        c = _signerConfig();
        c.expiresAt = uint40(block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidExpiry.selector, uint40(block.timestamp)));
        sp.setKey(signerKeyId, c);
    }

    function test_setKey_toppingUpKeepsTheRateWindowsCount() public {
        _fund(10 * JOB_FEE);
        ISponsorships.KeyConfig memory c = _signerConfig();
        c.window = WINDOW;
        c.maxJobsPerWindow = 2;
        _setKey(signerKeyId, c);
        _submitSigned(0);
        _submitSigned(1);
        c.allowance = 20 * JOB_FEE;
        _setKey(signerKeyId, c);
        (ISponsorships.KeyConfig memory got, uint16 jobsInWindow) = sp.keyOf(sponsor, signerKeyId);
        assertEq(got.allowance, 20 * JOB_FEE);
        assertEq(jobsInWindow, 2, "a new allowance is no new window");
        ISponsorships.Job memory job = _job(signerKeyId, 2);
        bytes memory signature = _signJob(clientKey, job);
        uint256 next = (block.timestamp / WINDOW + 1) * WINDOW;
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.RateLimited.selector, next));
        sp.submit(job, signature);
    }

    function test_revokeKey_refusesLaterJobsAndKeepsNoncesUsed() public {
        _fund(10 * JOB_FEE);
        _submitSigned(0);
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.KeyRevoked(sponsor, signerKeyId);
        vm.prank(sponsor);
        sp.revokeKey(signerKeyId);
        (ISponsorships.KeyConfig memory got,) = sp.keyOf(sponsor, signerKeyId);
        assertEq(uint8(got.kind), uint8(ISponsorships.KeyKind.None));
        assertEq(got.allowance, 0);

        ISponsorships.Job memory job = _job(signerKeyId, 1);
        bytes memory signature = _signJob(clientKey, job);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.UnknownKey.selector, sponsor, signerKeyId));
        sp.submit(job, signature);

        // Set again, the key works, and a job signed before the revocation cannot come back.
        _setKey(signerKeyId, _signerConfig());
        sp.submit(job, signature);
        ISponsorships.Job memory replay = _job(signerKeyId, 0);
        bytes memory replaySignature = _signJob(clientKey, replay);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.NonceAlreadyUsed.selector, sponsor, signerKeyId, 0));
        sp.submit(replay, replaySignature);
    }

    function test_revokeKey_revertsForAKeyNotSet() public {
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.UnknownKey.selector, sponsor, API_KEY_ID));
        vm.prank(sponsor);
        sp.revokeKey(API_KEY_ID);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           SUBMIT                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_submit_signerKeyJobLandsAndItsConsumerGetsTheResult() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(signerKeyId, 0);
        bytes memory signature = _signJob(clientKey, job);

        vm.expectEmit(false, true, true, true, address(sp));
        emit ISponsorships.JobSubmitted(
            bytes32(0), sponsor, signerKeyId, address(jobConsumer), PAID_TEMPLATE_ID, 0, JOB_FEE
        );
        // Anyone may relay a signed job.
        vm.prank(stranger);
        Request memory r = _submit(job, signature);

        // An ordinary request of this contract, with the job's template and input as they are.
        assertEq(r.consumer, address(sp));
        assertEq(r.templateId, PAID_TEMPLATE_ID);
        assertEq(r.inputHash, keccak256(input));
        assertEq(r.fee, JOB_FEE);
        assertEq(r.callbackGasLimit, _requestGas(CALLBACK_GAS));
        assertEq(r.deadline, block.timestamp + JOB_TIMEOUT);
        (address jobSponsor, bytes32 keyId, address jobConsumer_, uint32 callbackGas, uint96 fee) =
            sp.jobOf(r.requestId);
        assertEq(jobSponsor, sponsor);
        assertEq(keyId, signerKeyId);
        assertEq(jobConsumer_, address(jobConsumer));
        assertEq(callbackGas, CALLBACK_GAS);
        assertEq(fee, JOB_FEE);
        assertEq(sp.balanceOf(sponsor), 9 * JOB_FEE);
        assertEq(_allowance(signerKeyId), 9 * JOB_FEE);
        assertTrue(sp.nonceUsed(sponsor, signerKeyId, 0));
        assertFalse(sp.nonceUsed(sponsor, signerKeyId, 1));
        assertFalse(sp.nonceUsed(sponsor, API_KEY_ID, 0));

        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobSettled(r.requestId, 0, true);
        _fulfil(r, 0, OUTPUT);
        assertEq(jobConsumer.calls(), 1);
        assertEq(jobConsumer.lastRequestId(), r.requestId);
        assertEq(jobConsumer.lastSponsor(), sponsor);
        assertEq(jobConsumer.lastStatus(), 0);
        assertEq(jobConsumer.lastOutput(), OUTPUT);
        (jobSponsor,,,,) = sp.jobOf(r.requestId);
        assertEq(jobSponsor, address(0), "forgotten once settled");
        // The fee went to the author and the enclave's payee, as for any request.
        assertEq(coprocessor.balanceOf(author), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(payee), MIN_FEE);
        assertEq(sp.balanceOf(sponsor), 9 * JOB_FEE);
        _assertSolvent();
    }

    function test_submit_exampleConsumerStoresTheResult() public {
        SponsoredJobConsumer example = new SponsoredJobConsumer(address(sp));
        _fund(JOB_FEE);
        ISponsorships.Job memory job = _job(signerKeyId, 0);
        job.consumer = address(example);
        Request memory r = _submit(job, _signJob(clientKey, job));
        _fulfil(r, 0, OUTPUT);
        SponsoredJobConsumer.Response memory got = example.response(r.requestId);
        assertTrue(got.received);
        assertEq(got.sponsor, sponsor);
        assertEq(got.output, OUTPUT);
        vm.expectRevert(abi.encodeWithSelector(SponsoredJobConsumer.OnlySponsorships.selector, stranger));
        vm.prank(stranger);
        example.onSponsoredJob(r.requestId, sponsor, 0, OUTPUT);
    }

    function test_submit_relayedKeyJobOnlyFromItsRelayer() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(API_KEY_ID, 0);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.NotRelayer.selector, stranger, relayer));
        vm.prank(stranger);
        sp.submit(job, "");
        // Not even the sponsor, nor with a signature.
        bytes memory signature = _signJob(clientKey, job);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.NotRelayer.selector, sponsor, relayer));
        vm.prank(sponsor);
        sp.submit(job, signature);

        Request memory r = _submitRelayed(0);
        (, bytes32 keyId,,,) = sp.jobOf(r.requestId);
        assertEq(keyId, API_KEY_ID);
        assertEq(_allowance(API_KEY_ID), 9 * JOB_FEE);
        _fulfil(r, 0, OUTPUT);
        assertEq(jobConsumer.lastOutput(), OUTPUT);
    }

    function test_submit_revertsForAWrongSigner() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(signerKeyId, 0);
        (, uint256 otherKey) = makeAddrAndKey("other client");
        bytes memory signature = _signJob(otherKey, job);
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(job, signature);
        // Malformed signatures too.
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(job, "");
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(job, new bytes(65));
    }

    function test_submit_revertsForATamperedJob() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(signerKeyId, 0);
        bytes memory signature = _signJob(clientKey, job);

        ISponsorships.Job memory tampered = _job(signerKeyId, 0);
        tampered.input = abi.encode("BTC/USD");
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(tampered, signature);
        tampered = _job(signerKeyId, 0);
        tampered.consumer = address(consumer);
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(tampered, signature);
        tampered = _job(signerKeyId, 0);
        tampered.callbackGas = CALLBACK_GAS + 1;
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(tampered, signature);
        tampered = _job(signerKeyId, 0);
        tampered.deadline += 1;
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(tampered, signature);

        // The signature names its sponsor: another sponsor who authorised the same signer cannot be charged.
        vm.prank(stranger);
        sp.deposit{value: 1 ether}();
        vm.prank(stranger);
        sp.setKey(signerKeyId, _signerConfig());
        tampered = _job(signerKeyId, 0);
        tampered.sponsor = stranger;
        vm.expectRevert(ISponsorships.InvalidJobSignature.selector);
        sp.submit(tampered, signature);

        sp.submit(job, signature);
        assertEq(sp.balanceOf(stranger), 1 ether);
    }

    function test_submit_revertsOnAReplayedNonce() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(signerKeyId, 42);
        bytes memory signature = _signJob(clientKey, job);
        sp.submit(job, signature);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.NonceAlreadyUsed.selector, sponsor, signerKeyId, 42));
        sp.submit(job, signature);

        // Nonces are unordered: lower and far higher ones are fine, each once.
        _submitSigned(7);
        _submitSigned(type(uint256).max);
        assertTrue(sp.nonceUsed(sponsor, signerKeyId, type(uint256).max));
        assertFalse(sp.nonceUsed(sponsor, signerKeyId, 41));

        // Relayed keys too: a node that retries a submission cannot double it.
        _submitRelayed(42);
        ISponsorships.Job memory relayed = _job(API_KEY_ID, 42);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.NonceAlreadyUsed.selector, sponsor, API_KEY_ID, 42));
        vm.prank(relayer);
        sp.submit(relayed, "");
        assertEq(sp.balanceOf(sponsor), 6 * JOB_FEE);
    }

    function test_submit_revertsAfterTheDeadline() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(signerKeyId, 0);
        bytes memory signature = _signJob(clientKey, job);
        vm.warp(job.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.JobDeadlinePassed.selector, job.deadline));
        sp.submit(job, signature);
        // At the deadline itself it is still accepted.
        vm.warp(job.deadline);
        sp.submit(job, signature);
    }

    function test_submit_revertsWhenTheFeeExceedsMaxFeePerJob() public {
        _fund(10 * JOB_FEE);
        ISponsorships.KeyConfig memory c = _signerConfig();
        c.maxFeePerJob = JOB_FEE - 1;
        _setKey(signerKeyId, c);
        ISponsorships.Job memory job = _job(signerKeyId, 0);
        bytes memory signature = _signJob(clientKey, job);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.FeeAboveKeyLimit.selector, JOB_FEE, JOB_FEE - 1));
        sp.submit(job, signature);

        // The cheaper template fits; and if the Coprocessor's owner raises its fee, the key stops paying.
        job.templateId = TEMPLATE_ID;
        sp.submit(job, _signJob(clientKey, job));
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 16 * 1024, 2_000_000, 7 days, JOB_FEE));
        job.nonce = 1;
        signature = _signJob(clientKey, job);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.FeeAboveKeyLimit.selector, JOB_FEE, JOB_FEE - 1));
        sp.submit(job, signature);
    }

    function test_submit_revertsWhenTheAllowanceIsExhausted() public {
        _fund(10 * JOB_FEE);
        ISponsorships.KeyConfig memory c = _relayedConfig();
        c.allowance = 2 * JOB_FEE + JOB_FEE / 2;
        _setKey(API_KEY_ID, c);
        _submitRelayed(0);
        _submitRelayed(1);
        ISponsorships.Job memory job = _job(API_KEY_ID, 2);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.AllowanceExceeded.selector, JOB_FEE, JOB_FEE / 2));
        vm.prank(relayer);
        sp.submit(job, "");
        // The sponsor's balance is there, but only the sponsor's other keys may use it.
        assertEq(sp.balanceOf(sponsor), 8 * JOB_FEE);
        _submitSigned(0);
    }

    function test_submit_revertsWhenTheSponsorBalanceIsExhausted() public {
        _fund(JOB_FEE + JOB_FEE / 2);
        _submitSigned(0);
        ISponsorships.Job memory job = _job(API_KEY_ID, 0);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InsufficientBalance.selector, JOB_FEE / 2, JOB_FEE));
        vm.prank(relayer);
        sp.submit(job, "");
        // Topped up, the same job goes through.
        vm.prank(sponsor);
        sp.deposit{value: JOB_FEE / 2}();
        vm.prank(relayer);
        sp.submit(job, "");
        assertEq(sp.balanceOf(sponsor), 0);
    }

    function test_submit_rateWindowExceededThenAllowedInTheNextWindow() public {
        _fund(10 * JOB_FEE);
        ISponsorships.KeyConfig memory c = _relayedConfig();
        c.window = WINDOW;
        c.maxJobsPerWindow = 2;
        _setKey(API_KEY_ID, c);
        // Fixed windows: window k covers [k * WINDOW, (k + 1) * WINDOW).
        uint256 windowStart = (block.timestamp / WINDOW) * WINDOW;
        vm.warp(windowStart + 10 minutes);
        _submitRelayed(0);
        vm.warp(windowStart + WINDOW - 1);
        _submitRelayed(1);
        (, uint16 jobsInWindow) = sp.keyOf(sponsor, API_KEY_ID);
        assertEq(jobsInWindow, 2);

        ISponsorships.Job memory job = _job(API_KEY_ID, 2);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.RateLimited.selector, windowStart + WINDOW));
        vm.prank(relayer);
        sp.submit(job, "");

        vm.warp(windowStart + WINDOW);
        (, jobsInWindow) = sp.keyOf(sponsor, API_KEY_ID);
        assertEq(jobsInWindow, 0);
        job.deadline = uint64(block.timestamp) + JOB_VALIDITY;
        vm.prank(relayer);
        sp.submit(job, "");
        _submitRelayed(3);
        job = _job(API_KEY_ID, 4);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.RateLimited.selector, windowStart + 2 * WINDOW));
        vm.prank(relayer);
        sp.submit(job, "");
        // Each key has its own window.
        _submitSigned(0);
    }

    function test_submit_consumerRestriction() public {
        _fund(10 * JOB_FEE);
        ISponsorships.KeyConfig memory c = _relayedConfig();
        c.consumer = address(jobConsumer);
        _setKey(API_KEY_ID, c);
        ISponsorships.Job memory job = _job(API_KEY_ID, 0);
        job.consumer = address(consumer);
        vm.expectRevert(
            abi.encodeWithSelector(ISponsorships.ConsumerNotAllowed.selector, address(consumer), address(jobConsumer))
        );
        vm.prank(relayer);
        sp.submit(job, "");
        _submitRelayed(0);
        // Any key refuses the zero address.
        job.consumer = address(0);
        job.nonce = 1;
        vm.expectRevert(ISponsorships.InvalidConsumer.selector);
        vm.prank(relayer);
        sp.submit(job, "");
    }

    function test_submit_templateRestriction() public {
        _fund(10 * JOB_FEE);
        ISponsorships.KeyConfig memory c = _signerConfig();
        c.templateId = TEMPLATE_ID;
        _setKey(signerKeyId, c);
        ISponsorships.Job memory job = _job(signerKeyId, 0);
        bytes memory signature = _signJob(clientKey, job);
        vm.expectRevert(
            abi.encodeWithSelector(ISponsorships.TemplateNotAllowed.selector, PAID_TEMPLATE_ID, TEMPLATE_ID)
        );
        sp.submit(job, signature);
        job.templateId = TEMPLATE_ID;
        Request memory r = _submit(job, _signJob(clientKey, job));
        assertEq(r.templateId, TEMPLATE_ID);
        assertEq(r.fee, MIN_FEE);

        // Unrestricted again: the stale template slot is ignored.
        _setKey(signerKeyId, _signerConfig());
        (ISponsorships.KeyConfig memory got,) = sp.keyOf(sponsor, signerKeyId);
        assertEq(got.templateId, bytes32(0));
        _submitSigned(1);
    }

    function test_submit_revertsForAnExpiredKey() public {
        _fund(10 * JOB_FEE);
        ISponsorships.KeyConfig memory c = _signerConfig();
        c.expiresAt = uint40(block.timestamp + 1 hours);
        _setKey(signerKeyId, c);
        _submitSigned(0);
        vm.warp(c.expiresAt);
        ISponsorships.Job memory job = _job(signerKeyId, 1);
        bytes memory signature = _signJob(clientKey, job);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.KeyExpired.selector, sponsor, signerKeyId, c.expiresAt));
        sp.submit(job, signature);
    }

    function test_submit_revertsForARevokedKey() public {
        _fund(10 * JOB_FEE);
        vm.prank(sponsor);
        sp.revokeKey(API_KEY_ID);
        ISponsorships.Job memory job = _job(API_KEY_ID, 0);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.UnknownKey.selector, sponsor, API_KEY_ID));
        vm.prank(relayer);
        sp.submit(job, "");
    }

    function test_submit_revertsOnUnusableCallbackGas() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(API_KEY_ID, 0);
        job.callbackGas = 0;
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidCallbackGas.selector, uint32(0)));
        vm.prank(relayer);
        sp.submit(job, "");
        job.callbackGas = type(uint32).max - sp.CALLBACK_OVERHEAD();
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.InvalidCallbackGas.selector, job.callbackGas));
        vm.prank(relayer);
        sp.submit(job, "");
        // Over the Coprocessor's cap: its refusal comes through, and nothing is charged.
        job.callbackGas = 2_000_000;
        vm.expectRevert(
            abi.encodeWithSelector(ICoprocessor.InvalidCallbackGasLimit.selector, _requestGas(2_000_000), 2_000_000)
        );
        vm.prank(relayer);
        sp.submit(job, "");
        assertEq(sp.balanceOf(sponsor), 10 * JOB_FEE);
        assertFalse(sp.nonceUsed(sponsor, API_KEY_ID, 0));
    }

    function test_submit_refundedEtherPaysTheNextJob() public {
        _fund(JOB_FEE);
        Request memory r = _submitSigned(0);
        assertEq(address(sp).balance, 0);
        vm.warp(r.deadline + 1);
        sp.reclaim(r);
        // The refund is credited at the Coprocessor; the next job's fee is withdrawn from there.
        Request memory r1 = _submitSigned(1);
        assertEq(r1.fee, JOB_FEE);
        assertEq(coprocessor.balanceOf(address(sp)), 0);
        assertEq(address(sp).balance, 0);
        assertEq(sp.balanceOf(sponsor), 0);
    }

    function test_jobDigest_isTheEIP712DigestOfTheJob() public view {
        ISponsorships.Job memory job = _job(signerKeyId, 3);
        bytes32 typeHash = keccak256(
            "Job(address sponsor,bytes32 keyId,address consumer,bytes32 templateId,bytes input,uint32 callbackGas,uint64 timeout,uint256 nonce,uint64 deadline)"
        );
        assertEq(sp.JOB_TYPEHASH(), typeHash);
        bytes32 structHash = keccak256(
            abi.encode(
                typeHash,
                job.sponsor,
                job.keyId,
                job.consumer,
                job.templateId,
                keccak256(job.input),
                job.callbackGas,
                job.timeout,
                job.nonce,
                job.deadline
            )
        );
        bytes32 separator = _domainSeparator("Sponsorships", block.chainid, address(sp));
        assertEq(sp.jobDigest(job), keccak256(abi.encodePacked("\x19\x01", separator, structHash)));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         SETTLEMENT                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_onResponse_errorStatusRefundsTheAuthorFeeToTheSponsor() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitSigned(0);
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobRefunded(r.requestId, sponsor, signerKeyId, AUTHOR_FEE);
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobSettled(r.requestId, 2, true);
        _fulfil(r, 2, "bad input");
        assertEq(jobConsumer.lastStatus(), 2);
        assertEq(jobConsumer.lastOutput(), "bad input");
        // The author fee is back in the balance and the key's allowance; the payee kept the rest.
        assertEq(sp.balanceOf(sponsor), 9 * JOB_FEE + AUTHOR_FEE);
        assertEq(_allowance(signerKeyId), 9 * JOB_FEE + AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(address(sp)), AUTHOR_FEE);
        assertEq(coprocessor.balanceOf(author), 0);
        assertEq(coprocessor.balanceOf(payee), MIN_FEE);
        _assertSolvent();
    }

    function test_onResponse_errorStatusOfAFreeTemplateRefundsNothing() public {
        _fund(10 * JOB_FEE);
        ISponsorships.Job memory job = _job(API_KEY_ID, 0);
        job.templateId = TEMPLATE_ID;
        vm.prank(relayer);
        Request memory r = _submit(job, "");
        _fulfil(r, 1, "template failed");
        assertEq(jobConsumer.lastStatus(), 1);
        assertEq(sp.balanceOf(sponsor), 10 * JOB_FEE - MIN_FEE);
        assertEq(coprocessor.balanceOf(address(sp)), 0);
    }

    function test_onResponse_revertingConsumerDoesNotBlockSettlement() public {
        _fund(10 * JOB_FEE);
        jobConsumer.setMode(JobConsumer.Mode.Revert);
        Request memory r = _submitSigned(0);
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobSettled(r.requestId, 0, false);
        // The Coprocessor sees this contract's callback succeed.
        vm.expectEmit(true, true, true, true, address(coprocessor));
        emit ICoprocessor.RequestFulfilled(r.requestId, enclave, 0, true);
        _fulfil(r, 0, OUTPUT);
        (address jobSponsor,,,,) = sp.jobOf(r.requestId);
        assertEq(jobSponsor, address(0));
        // The next job goes on.
        jobConsumer.setMode(JobConsumer.Mode.Store);
        _fulfil(_submitSigned(1), 0, OUTPUT);
        assertEq(jobConsumer.lastOutput(), OUTPUT);
    }

    function test_onResponse_gasBurningConsumerGetsExactlyItsGasAndSettles() public {
        _fund(10 * JOB_FEE);
        jobConsumer.setMode(JobConsumer.Mode.BurnGas);
        Request memory r = _submitRelayed(0);
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobSettled(r.requestId, 0, false);
        _fulfil(r, 0, OUTPUT);
    }

    function test_onResponse_outputOverTheCapSettlesWithoutTheConsumer() public {
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 64 * 1024, 2_000_000, 7 days, MIN_FEE));
        _fund(10 * JOB_FEE);
        Request memory r = _submitSigned(0);
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobSettled(r.requestId, 0, false);
        _fulfil(r, 0, new bytes(64 * 1024));
        assertEq(jobConsumer.calls(), 0);
    }

    function test_onResponse_refundOfARevokedKeyGoesToTheBalanceOnly() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitRelayed(0);
        vm.prank(sponsor);
        sp.revokeKey(API_KEY_ID);
        _fulfil(r, 3, "timeout");
        assertEq(sp.balanceOf(sponsor), 9 * JOB_FEE + AUTHOR_FEE);
        (ISponsorships.KeyConfig memory got,) = sp.keyOf(sponsor, API_KEY_ID);
        assertEq(got.allowance, 0);
        // Set again, the key starts from the allowance it is given.
        _setKey(API_KEY_ID, _relayedConfig());
        assertEq(_allowance(API_KEY_ID), 10 * JOB_FEE);
    }

    function test_onCoprocessorResponse_revertsForAnyoneButTheCoprocessor() public {
        vm.expectRevert(abi.encodeWithSelector(CoprocessorClient.OnlyCoprocessor.selector, stranger));
        vm.prank(stranger);
        sp.onCoprocessorResponse(bytes32(uint256(1)), 0, "");
    }

    function test_receive_refusesEtherFromAnyoneButTheCoprocessor() public {
        vm.prank(stranger);
        (bool ok,) = address(sp).call{value: 1 ether}("");
        assertFalse(ok);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          RECLAIM                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_reclaim_expiredJobRefundsTheSponsorAndTheAllowance() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitRelayed(0);
        vm.warp(r.deadline + 1);
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobRefunded(r.requestId, sponsor, API_KEY_ID, JOB_FEE);
        vm.prank(stranger);
        sp.reclaim(r);
        assertEq(uint8(coprocessor.requestState(r.requestId)), uint8(ICoprocessor.RequestState.Cancelled));
        assertEq(sp.balanceOf(sponsor), 10 * JOB_FEE);
        assertEq(_allowance(API_KEY_ID), 10 * JOB_FEE);
        assertEq(coprocessor.balanceOf(address(sp)), JOB_FEE);
        (address jobSponsor,,,,) = sp.jobOf(r.requestId);
        assertEq(jobSponsor, address(0));
        _assertSolvent();
    }

    function test_reclaim_revertsBeforeTheDeadline() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitSigned(0);
        vm.warp(r.deadline);
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.DeadlineNotReached.selector, r.requestId, r.deadline));
        sp.reclaim(r);
        assertEq(sp.balanceOf(sponsor), 9 * JOB_FEE);
    }

    function test_reclaim_revertsForAForgedRequest() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitSigned(0);
        vm.warp(r.deadline + 1);
        r.fee = JOB_FEE * 10;
        vm.expectRevert(abi.encodeWithSelector(ICoprocessor.CommitmentMismatch.selector, r.requestId));
        sp.reclaim(r);
    }

    function test_reclaim_creditsOnceOnly() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitSigned(0);
        vm.warp(r.deadline + 1);
        sp.reclaim(r);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.UnknownJob.selector, r.requestId));
        sp.reclaim(r);
        assertEq(sp.balanceOf(sponsor), 10 * JOB_FEE);
    }

    function test_reclaim_revertsForASettledJob() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitSigned(0);
        _fulfil(r, 0, OUTPUT);
        vm.warp(r.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ISponsorships.UnknownJob.selector, r.requestId));
        sp.reclaim(r);
    }

    function test_reclaim_creditsAJobSomeoneElseCancelled() public {
        _fund(10 * JOB_FEE);
        Request memory r = _submitSigned(0);
        vm.warp(r.deadline + 1);
        vm.prank(stranger);
        coprocessor.cancel(r);
        sp.reclaim(r);
        assertEq(sp.balanceOf(sponsor), 10 * JOB_FEE);
        _assertSolvent();
    }

    function test_reclaim_allowanceSaturates() public {
        vm.prank(sponsor);
        sp.deposit{value: 10 * JOB_FEE}();
        ISponsorships.KeyConfig memory c = _relayedConfig();
        c.allowance = type(uint96).max;
        _setKey(API_KEY_ID, c);
        Request memory r = _submitRelayed(0);
        c.allowance = type(uint96).max;
        _setKey(API_KEY_ID, c);
        vm.warp(r.deadline + 1);
        sp.reclaim(r);
        assertEq(_allowance(API_KEY_ID), type(uint96).max);
    }

    function test_solvency_acrossKeysAndOutcomes() public {
        _fund(10 * JOB_FEE);
        Request memory a = _submitSigned(0);
        Request memory b = _submitRelayed(0);
        Request memory c = _submitRelayed(1);
        Request memory d = _submitSigned(1);
        _fulfil(a, 0, OUTPUT);
        _fulfil(b, 4, "resource limit");
        _assertSolvent();
        vm.warp(c.deadline + 1);
        sp.reclaim(c);
        vm.prank(stranger);
        coprocessor.cancel(d);
        _assertSolvent();
        sp.reclaim(d);
        uint256 balance = sp.balanceOf(sponsor);
        assertEq(balance, 10 * JOB_FEE - JOB_FEE - MIN_FEE);
        vm.prank(sponsor);
        sp.withdraw(balance, payable(sponsor));
        assertEq(address(sp).balance + coprocessor.balanceOf(address(sp)), 0);
    }
}

/// @notice Gas snapshots of `submit` under each key kind, a job's `fulfill` and `reclaim`, written to
/// `snapshots/Sponsorships.json`.
/// @dev Note: as in `SubscriptionsGasTest`, everything is prepared in `setUp`, its own transaction, so each measured
/// call starts with cold accounts and storage. Steady state: the sponsor holds a balance, both keys have a rate limit
/// (100 jobs an hour) and each already ran a job in this window (nonce 0, so nonce 1 shares its storage word), the
/// payee's and author's balances are non-zero; a third job is in flight with its signed response ready. The job's
/// input is `abi.encode("ETH/USD")` (96 bytes). Figures are the callee frame's gas (no 21k intrinsic, no calldata
/// cost); `fulfill` includes the consumer storing the 32-byte output.
contract SponsorshipsGasTest is SponsorshipsTestBase {
    Request internal inFlight;
    bytes internal inFlightSig;
    ISponsorships.Job internal signedJob;
    bytes internal signedJobSig;
    ISponsorships.Job internal relayedJob;

    function setUp() public override {
        super.setUp();
        vm.prank(sponsor);
        sp.deposit{value: 10 ether}();
        ISponsorships.KeyConfig memory c = _signerConfig();
        c.allowance = 1 ether;
        c.window = WINDOW;
        c.maxJobsPerWindow = 100;
        _setKey(signerKeyId, c);
        c.kind = ISponsorships.KeyKind.Relayed;
        c.relayer = relayer;
        _setKey(API_KEY_ID, c);
        // Another output than the in-flight job's, so the consumer's stored output changes as it would.
        _fulfil(_submitSigned(0), 0, abi.encode(uint256(1)));
        _fulfil(_submitRelayed(0), 0, abi.encode(uint256(1)));
        inFlight = _submitSigned(2);
        inFlightSig = _sign(enclaveKey, _digest(inFlight, 0, OUTPUT));
        signedJob = _job(signerKeyId, 1);
        signedJobSig = _signJob(clientKey, signedJob);
        relayedJob = _job(API_KEY_ID, 1);
    }

    function test_submit_gasSignerKey() public {
        vm.prank(stranger);
        sp.submit(signedJob, signedJobSig);
        vm.snapshotGasLastCall("Sponsorships", "submit (Signer key: EIP-712 signature checked, relayed by anyone)");
        assertTrue(sp.nonceUsed(sponsor, signerKeyId, 1));
    }

    function test_submit_gasRelayedKey() public {
        vm.prank(relayer);
        sp.submit(relayedJob, "");
        vm.snapshotGasLastCall("Sponsorships", "submit (Relayed key: from its relayer)");
        assertTrue(sp.nonceUsed(sponsor, API_KEY_ID, 1));
    }

    function test_fulfill_gasOfAJob() public {
        coprocessor.fulfill(_batch(Fulfillment(inFlight, 0, OUTPUT, inFlightSig)));
        vm.snapshotGasLastCall("Sponsorships", "fulfill of a job (Coprocessor.fulfill, consumer stores the output)");
        assertEq(jobConsumer.lastOutput(), OUTPUT);
    }

    function test_reclaim_gas() public {
        vm.warp(inFlight.deadline + 1);
        sp.reclaim(inFlight);
        vm.snapshotGasLastCall("Sponsorships", "reclaim (cancels the expired job at the Coprocessor)");
        assertEq(sp.balanceOf(sponsor), 10 ether - 2 * JOB_FEE);
    }

    function test_setKey_gasOfANewKey() public {
        ISponsorships.KeyConfig memory c = _relayedConfig();
        c.window = WINDOW;
        c.maxJobsPerWindow = 100;
        vm.prank(sponsor);
        sp.setKey(keccak256("api-key:another"), c);
        vm.snapshotGasLastCall("Sponsorships", "setKey (a new Relayed key with a rate limit)");
    }
}

/// @notice What `CALLBACK_OVERHEAD` must cover, measured from cold storage as a real `fulfill` meets it: the job is
/// submitted in `setUp` (its own transaction). The worst case: an error status (the author fee is credited to the
/// sponsor's balance, emptied by the job, and to the key's allowance), a `MAX_OUTPUT_BYTES` output, and a large
/// callback gas (its 1/64 is kept back).
contract SponsorshipsCallbackGasTest is SponsorshipsTestBase {
    uint32 internal constant LARGE_CALLBACK_GAS = 1_900_000;

    Request internal job;
    bytes internal worstOutput;

    function setUp() public override {
        super.setUp();
        _fund(JOB_FEE);
        jobConsumer.setMode(JobConsumer.Mode.Probe);
        ISponsorships.Job memory j = _job(API_KEY_ID, 0);
        j.callbackGas = LARGE_CALLBACK_GAS;
        // A request this large needs the Coprocessor's cap above its default 2M.
        vm.prank(owner);
        coprocessor.setLimits(Coprocessor.Limits(16 * 1024, 16 * 1024, 3_000_000, 7 days, MIN_FEE));
        vm.prank(relayer);
        job = _submit(j, "");
        assertEq(sp.balanceOf(sponsor), 0);
        worstOutput = new bytes(sp.MAX_OUTPUT_BYTES());
        worstOutput[0] = 0x01;
    }

    function test_onResponse_consumerGetsItsWholeGasInTheWorstCase() public {
        vm.expectEmit(true, true, true, true, address(sp));
        emit ISponsorships.JobSettled(job.requestId, 1, true);
        _fulfil(job, 1, worstOutput);
        assertEq(jobConsumer.calls(), 1);
        // All of it but the consumer's own dispatch before its first statement.
        assertLe(jobConsumer.gasAtEntry(), LARGE_CALLBACK_GAS);
        assertGt(jobConsumer.gasAtEntry(), LARGE_CALLBACK_GAS - 1_000);
        assertEq(sp.balanceOf(sponsor), AUTHOR_FEE);
    }

    /// @dev The least callback gas with which the worst case still reaches the consumer, found by bisection (each try
    /// from the same cold state): `CALLBACK_OVERHEAD` leaves a margin of at least 20k over it.
    function test_onResponse_overheadLeavesAMargin() public {
        uint256 full = _requestGas(LARGE_CALLBACK_GAS);
        uint256 low = LARGE_CALLBACK_GAS;
        uint256 high = full;
        assertTrue(_reachesConsumer(high));
        while (high - low > 1) {
            uint256 mid = (low + high) / 2;
            if (_reachesConsumer(mid)) high = mid;
            else low = mid;
        }
        emit log_named_uint("least callback gas reaching the consumer", high);
        emit log_named_uint("unused CALLBACK_OVERHEAD in the worst case", full - high);
        assertGe(full - high, 20_000);
    }

    /// @dev Whether this contract, given `gas` for its callback, calls the consumer in the worst case.
    function _reachesConsumer(uint256 gas) internal returns (bool reached) {
        uint256 snapshot = vm.snapshotState();
        vm.prank(address(coprocessor));
        (bool ok,) =
            address(sp).call{gas: gas}(abi.encodeCall(sp.onCoprocessorResponse, (job.requestId, 1, worstOutput)));
        reached = ok && jobConsumer.calls() == 1;
        vm.revertToState(snapshot);
    }
}

/// @notice Drives Sponsorships like several sponsors, their clients and a node: deposits, withdrawals, jobs under
/// both key kinds, answers (Ok and error), expiries reclaimed or cancelled by a stranger first, and time.
/// @dev Note: every action is written not to revert.
contract SponsorshipsHandler is CommonBase, StdCheats, StdUtils {
    bytes32 internal constant REQUEST_SUBMITTED_SIG =
        keccak256("RequestSubmitted(bytes32,address,bytes32,bytes,bytes32,uint32,uint96,uint64,uint64,bytes32)");
    bytes32 internal constant API_KEY_ID = keccak256("api-key");

    Sponsorships public immutable sp;
    Coprocessor public immutable coprocessor;
    address public immutable consumer;
    uint256 internal immutable _enclaveKey;
    bytes32 internal immutable _freeTemplate;
    bytes32 internal immutable _paidTemplate;

    address[] public sponsors;
    uint256[] internal _clientKeys;
    uint256 internal _nonce;

    Request[] internal _pending;

    /// @notice Fees credited to this contract at the Coprocessor by a stranger's cancel, not yet reclaimed.
    uint256 public ghostUnattributed;
    uint256 public ghostDeposited;
    uint256 public ghostWithdrawn;
    uint256 public submitted;
    uint256 public settled;
    uint256 public reclaimed;

    constructor(
        Sponsorships sp_,
        Coprocessor coprocessor_,
        address consumer_,
        uint256 enclaveKey_,
        bytes32 freeTemplate,
        bytes32 paidTemplate
    ) {
        sp = sp_;
        coprocessor = coprocessor_;
        consumer = consumer_;
        _enclaveKey = enclaveKey_;
        _freeTemplate = freeTemplate;
        _paidTemplate = paidTemplate;
        for (uint256 i; i < 3; ++i) {
            address s = makeAddr(string.concat("sponsor", vm.toString(i)));
            (address signer, uint256 key) = makeAddrAndKey(string.concat("client", vm.toString(i)));
            sponsors.push(s);
            _clientKeys.push(key);
            ISponsorships.KeyConfig memory c = ISponsorships.KeyConfig({
                kind: ISponsorships.KeyKind.Signer,
                relayer: address(0),
                consumer: address(0),
                templateId: bytes32(0),
                maxFeePerJob: 1 ether,
                allowance: 1_000 ether,
                maxJobsPerWindow: 0,
                window: 0,
                expiresAt: 0
            });
            vm.prank(s);
            sp.setKey(bytes32(uint256(uint160(signer))), c);
            c.kind = ISponsorships.KeyKind.Relayed;
            c.relayer = address(this);
            vm.prank(s);
            sp.setKey(API_KEY_ID, c);
        }
    }

    function sponsorCount() external view returns (uint256) {
        return sponsors.length;
    }

    function deposit(uint256 who, uint256 amount) external {
        address s = sponsors[who % sponsors.length];
        amount = bound(amount, 0, 1 ether);
        vm.deal(s, amount);
        vm.prank(s);
        sp.deposit{value: amount}();
        ghostDeposited += amount;
    }

    function withdraw(uint256 who, uint256 amount) external {
        address s = sponsors[who % sponsors.length];
        amount = bound(amount, 0, sp.balanceOf(s));
        vm.prank(s);
        sp.withdraw(amount, payable(makeAddr("sink")));
        ghostWithdrawn += amount;
    }

    function submit(uint256 who, bool relayed, bool paid) external {
        uint256 i = who % sponsors.length;
        address s = sponsors[i];
        bytes32 templateId = paid ? _paidTemplate : _freeTemplate;
        if (sp.balanceOf(s) < coprocessor.requestFee(templateId)) return;
        uint256 key = _clientKeys[i];
        ISponsorships.Job memory job = ISponsorships.Job({
            sponsor: s,
            keyId: relayed ? API_KEY_ID : bytes32(uint256(uint160(vm.addr(key)))),
            consumer: consumer,
            templateId: templateId,
            input: abi.encode(_nonce),
            callbackGas: 100_000,
            timeout: 1 hours,
            nonce: _nonce++,
            deadline: uint64(block.timestamp)
        });
        bytes memory signature;
        if (!relayed) {
            (uint8 v, bytes32 r, bytes32 sig) = vm.sign(key, sp.jobDigest(job));
            signature = abi.encodePacked(r, sig, v);
        }
        vm.recordLogs();
        sp.submit(job, signature);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 k; k < logs.length; ++k) {
            if (logs[k].emitter != address(coprocessor) || logs[k].topics[0] != REQUEST_SUBMITTED_SIG) continue;
            Request memory req;
            req.requestId = logs[k].topics[1];
            req.consumer = address(uint160(uint256(logs[k].topics[2])));
            req.templateId = logs[k].topics[3];
            (, req.inputHash, req.callbackGasLimit, req.fee, req.deadline, req.anchorBlock, req.anchorHash) =
                abi.decode(logs[k].data, (bytes, bytes32, uint32, uint96, uint64, uint64, bytes32));
            _pending.push(req);
        }
        ++submitted;
    }

    function fulfil(uint256 which, uint8 status, bool bigOutput) external {
        if (_pending.length == 0) return;
        uint256 i = which % _pending.length;
        Request memory r = _pending[i];
        if (block.timestamp > r.deadline) return;
        status = uint8(bound(status, 0, 5));
        bytes memory output = bigOutput ? new bytes(2048) : abi.encode(status);
        bytes32 digest = coprocessor.responseDigest(r.requestId, keccak256(abi.encode(r)), status, output);
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(_enclaveKey, digest);
        Fulfillment[] memory fs = new Fulfillment[](1);
        fs[0] = Fulfillment(r, status, output, abi.encodePacked(rr, s, v));
        coprocessor.fulfill(fs);
        _remove(i);
        ++settled;
    }

    /// @dev An expired job: reclaimed through Sponsorships, or cancelled by a stranger first (then reclaimed later).
    function expire(uint256 which, bool strangerFirst) external {
        if (_pending.length == 0) return;
        uint256 i = which % _pending.length;
        Request memory r = _pending[i];
        if (block.timestamp <= r.deadline) vm.warp(uint256(r.deadline) + 1);
        if (strangerFirst && coprocessor.requestState(r.requestId) == ICoprocessor.RequestState.Pending) {
            coprocessor.cancel(r);
            ghostUnattributed += r.fee;
            return; // stays in `_pending` until reclaimed
        }
        if (coprocessor.requestState(r.requestId) == ICoprocessor.RequestState.Cancelled) ghostUnattributed -= r.fee;
        sp.reclaim(r);
        _remove(i);
        ++reclaimed;
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 0, 2 hours));
    }

    function _remove(uint256 i) private {
        _pending[i] = _pending[_pending.length - 1];
        _pending.pop();
    }
}

/// @notice Sponsors' balances are always covered by the ether this contract holds or has credited at the
/// Coprocessor, exactly up to the refunds it has not attributed yet.
/// forge-config: default.invariant.fail-on-revert = true
contract SponsorshipsInvariantTest is SponsorshipsTestBase {
    SponsorshipsHandler internal handler;

    function setUp() public override {
        super.setUp();
        address payee2 = makeAddr("payee2");
        uint256 longKey = _registerEnclave("enclave-long", payee2, uint64(block.timestamp) + 3650 days);
        handler = new SponsorshipsHandler(sp, coprocessor, address(jobConsumer), longKey, TEMPLATE_ID, PAID_TEMPLATE_ID);
        bytes4[] memory selectors = new bytes4[](6);
        selectors[0] = SponsorshipsHandler.deposit.selector;
        selectors[1] = SponsorshipsHandler.withdraw.selector;
        selectors[2] = SponsorshipsHandler.submit.selector;
        selectors[3] = SponsorshipsHandler.fulfil.selector;
        selectors[4] = SponsorshipsHandler.expire.selector;
        selectors[5] = SponsorshipsHandler.warp.selector;
        targetSelector(StdInvariant.FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    function invariant_balancesAreCovered() public view {
        uint256 owed;
        for (uint256 i; i < handler.sponsorCount(); ++i) {
            owed += sp.balanceOf(handler.sponsors(i));
        }
        uint256 held = address(sp).balance + coprocessor.balanceOf(address(sp));
        assertGe(held, owed, "balances not covered");
        assertEq(held, owed + handler.ghostUnattributed(), "unexplained ether");
        assertLe(owed, handler.ghostDeposited() - handler.ghostWithdrawn(), "sponsors gained ether");
    }
}
