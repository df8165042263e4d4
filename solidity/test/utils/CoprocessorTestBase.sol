// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test, Vm} from "forge-std/Test.sol";

import {Coprocessor} from "../../src/Coprocessor.sol";
import {EnclaveRegistry} from "../../src/EnclaveRegistry.sol";
import {TemplateRegistry} from "../../src/TemplateRegistry.sol";
import {ExampleConsumer} from "../../src/examples/ExampleConsumer.sol";
import {ICoprocessor} from "../../src/interfaces/ICoprocessor.sol";
import {ICoprocessorConsumer} from "../../src/interfaces/ICoprocessorConsumer.sol";
import {IEnclaveRegistry, EnclaveRecord} from "../../src/interfaces/IEnclaveRegistry.sol";
import {Request, Fulfillment} from "../../src/libraries/RequestLib.sol";

/// @notice Deploys a registry with real attestors, a registered DEV enclave, a TemplateRegistry with
/// `TEMPLATE_ID` (no author fee) and `PAID_TEMPLATE_ID` (`AUTHOR_FEE`) published by `author`, a
/// Coprocessor and an ExampleConsumer, and offers helpers to publish, request, sign and fulfil like an
/// author, a consumer and a node would.
abstract contract CoprocessorTestBase is Test {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         CONSTANTS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    uint256 internal constant ATTESTOR_COUNT = 3;
    uint256 internal constant THRESHOLD = 2;
    uint8 internal constant DEV = uint8(IEnclaveRegistry.TeeType.DEV);
    uint8 internal constant SGX = uint8(IEnclaveRegistry.TeeType.SGX);
    uint8 internal constant TDX = uint8(IEnclaveRegistry.TeeType.TDX);

    bytes32 internal constant IMAGE_ID = keccak256("coprocessor-dev-image");
    bytes32 internal constant TEMPLATE_ID = keccak256("template-bundle");
    string internal constant TEMPLATE_NAME = "test-template";
    /// @dev A second published template whose author charges `AUTHOR_FEE` per Ok answer.
    bytes32 internal constant PAID_TEMPLATE_ID = keccak256("paid-template-bundle");
    string internal constant PAID_TEMPLATE_NAME = "paid-template";
    uint96 internal constant AUTHOR_FEE = 0.004 ether;
    bytes32 internal constant QUOTE_HASH = keccak256("quote");
    uint64 internal constant ENCLAVE_TTL = 30 days;
    uint64 internal constant TIMEOUT = 1 hours;
    uint256 internal constant FEE = 0.01 ether;

    /// @dev A realistic clock, so `block.number - 1` and timestamps are far from zero.
    uint256 internal constant START_BLOCK = 1_000;
    uint256 internal constant START_TIME = 1_700_000_000;

    /// @dev secp256k1 group order: valid private keys are [1, N - 1].
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    bytes32 internal constant REQUEST_SUBMITTED_SIG =
        keccak256("RequestSubmitted(bytes32,address,bytes32,bytes,bytes32,uint32,uint96,uint64,uint64,bytes32)");
    bytes32 internal constant REQUEST_FULFILLED_SIG = keccak256("RequestFulfilled(bytes32,address,uint8,bool)");

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    address internal owner = makeAddr("owner");
    address internal payee = makeAddr("payee");
    address internal stranger = makeAddr("stranger");
    address internal author = makeAddr("author");

    /// @dev Attestor keys, sorted by ascending address.
    uint256[] internal attestorKeys;
    address[] internal attestors;

    address internal enclave;
    uint256 internal enclaveKey;

    EnclaveRegistry internal registry;
    TemplateRegistry internal templates;
    Coprocessor internal coprocessor;
    ExampleConsumer internal consumer;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           SETUP                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function setUp() public virtual {
        vm.roll(START_BLOCK);
        vm.warp(START_TIME);

        uint256[] memory keys = new uint256[](ATTESTOR_COUNT);
        for (uint256 i; i < ATTESTOR_COUNT; ++i) {
            (, keys[i]) = makeAddrAndKey(string.concat("attestor", vm.toString(i)));
        }
        _sortKeysByAddress(keys);
        for (uint256 i; i < ATTESTOR_COUNT; ++i) {
            attestorKeys.push(keys[i]);
            attestors.push(vm.addr(keys[i]));
        }

        registry = new EnclaveRegistry(owner, true, attestors, THRESHOLD);
        vm.prank(owner);
        registry.allowImage(IMAGE_ID, DEV);

        (enclave, enclaveKey) = makeAddrAndKey("enclave");
        _register(registry, _record(enclave, payee, uint64(block.timestamp) + ENCLAVE_TTL));

        templates = new TemplateRegistry();
        _publish(TEMPLATE_ID, TEMPLATE_NAME, 0);
        _publish(PAID_TEMPLATE_ID, PAID_TEMPLATE_NAME, AUTHOR_FEE);

        coprocessor = new Coprocessor(registry, templates, owner);
        consumer = new ExampleConsumer(coprocessor);
        vm.deal(address(this), 1_000 ether);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     REGISTRY HELPERS                       */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice A DEV record for `IMAGE_ID`.
    function _record(address enclave_, address payee_, uint64 expiresAt) internal pure returns (EnclaveRecord memory) {
        return EnclaveRecord({
            enclave: enclave_,
            imageId: IMAGE_ID,
            teeType: DEV,
            payee: payee_,
            expiresAt: expiresAt,
            quoteHash: QUOTE_HASH
        });
    }

    /// @notice Signs `digest` with every key and orders the signatures by ascending signer, as the registry requires.
    function _approvals(bytes32 digest, uint256[] memory keys) internal pure returns (bytes[] memory sigs) {
        keys = _copy(keys);
        _sortKeysByAddress(keys);
        sigs = new bytes[](keys.length);
        for (uint256 i; i < keys.length; ++i) {
            sigs[i] = _sign(keys[i], digest);
        }
    }

    /// @notice Approvals from the first `THRESHOLD` attestors for `record` on `reg`.
    function _approvals(EnclaveRegistry reg, EnclaveRecord memory record) internal view returns (bytes[] memory) {
        uint256[] memory keys = new uint256[](THRESHOLD);
        for (uint256 i; i < THRESHOLD; ++i) {
            keys[i] = attestorKeys[i];
        }
        return _approvals(reg.registrationDigest(record), keys);
    }

    /// @notice Registers `record` on `reg` with real attestor approvals.
    function _register(EnclaveRegistry reg, EnclaveRecord memory record) internal {
        reg.register(record, _approvals(reg, record));
    }

    /// @notice Registers a fresh enclave key on the shared registry; returns its key.
    function _registerEnclave(string memory name, address payee_, uint64 expiresAt) internal returns (uint256 key) {
        address addr;
        (addr, key) = makeAddrAndKey(name);
        _register(registry, _record(addr, payee_, expiresAt));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     TEMPLATE HELPERS                       */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Publishes `templateId` as `author`, version "1.0.0", no uri.
    function _publish(bytes32 templateId, string memory name, uint96 authorFee) internal {
        vm.prank(author);
        templates.publish(templateId, name, "1.0.0", "", authorFee);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     REQUEST HELPERS                        */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Asks for `templateId` through the ExampleConsumer and rebuilds the request from its `RequestSubmitted` log.
    function _ask(bytes32 templateId, bytes memory input, uint256 fee, uint64 timeout)
        internal
        returns (Request memory)
    {
        vm.recordLogs();
        consumer.ask{value: fee}(templateId, input, timeout);
        return _requestFromLogs(vm.getRecordedLogs());
    }

    /// @notice Asks for `TEMPLATE_ID` through the ExampleConsumer.
    function _ask(bytes memory input, uint256 fee, uint64 timeout) internal returns (Request memory) {
        return _ask(TEMPLATE_ID, input, fee, timeout);
    }

    /// @notice A default request: short input, `FEE`, `TIMEOUT`.
    function _ask() internal returns (Request memory) {
        return _ask(abi.encode("ETH/USD"), FEE, TIMEOUT);
    }

    /// @notice Rebuilds the last `Request` announced by the Coprocessor in `logs`, as a node's listener does.
    function _requestFromLogs(Vm.Log[] memory logs) internal view returns (Request memory r) {
        for (uint256 i = logs.length; i > 0; --i) {
            Vm.Log memory log = logs[i - 1];
            if (log.emitter != address(coprocessor) || log.topics[0] != REQUEST_SUBMITTED_SIG) continue;
            r.requestId = log.topics[1];
            r.consumer = address(uint160(uint256(log.topics[2])));
            r.templateId = log.topics[3];
            (, r.inputHash, r.callbackGasLimit, r.fee, r.deadline, r.anchorBlock, r.anchorHash) =
                abi.decode(log.data, (bytes, bytes32, uint32, uint96, uint64, uint64, bytes32));
            return r;
        }
        revert("no RequestSubmitted log");
    }

    /// @notice The commitment the Coprocessor stores for `r`.
    function _commitment(Request memory r) internal pure returns (bytes32) {
        return keccak256(abi.encode(r));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     RESPONSE HELPERS                       */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice The digest the enclave signs for a response to `r`, as the Coprocessor computes it.
    function _digest(Request memory r, uint8 status, bytes memory output) internal view returns (bytes32) {
        return coprocessor.responseDigest(r.requestId, _commitment(r), status, output);
    }

    /// @notice A 65-byte `r ‖ s ‖ v` signature of `digest` by `key`.
    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @notice A fulfilment of `r` signed by `key`.
    function _fulfillment(Request memory r, uint8 status, bytes memory output, uint256 key)
        internal
        view
        returns (Fulfillment memory)
    {
        return Fulfillment({
            request: r, status: status, output: output, signature: _sign(key, _digest(r, status, output))
        });
    }

    /// @notice An Ok fulfilment of `r` signed by the registered enclave.
    function _fulfillment(Request memory r, bytes memory output) internal view returns (Fulfillment memory) {
        return _fulfillment(r, 0, output, enclaveKey);
    }

    /// @notice Wraps one fulfilment in a batch.
    function _batch(Fulfillment memory f) internal pure returns (Fulfillment[] memory fs) {
        fs = new Fulfillment[](1);
        fs[0] = f;
    }

    /// @notice Wraps two fulfilments in a batch.
    function _batch(Fulfillment memory f0, Fulfillment memory f1) internal pure returns (Fulfillment[] memory fs) {
        fs = new Fulfillment[](2);
        fs[0] = f0;
        fs[1] = f1;
    }

    /// @notice Gas used inside the consumers' frames by the callbacks of `fs`, replayed from the current state
    /// as the Coprocessor would make them (same sender, gas, arguments). The state is then reverted, which
    /// also restores cold accounts and slots, so a measured `fulfill` can follow.
    function _callbackGas(Fulfillment[] memory fs) internal returns (uint256 total) {
        uint256 snapshot = vm.snapshotState();
        vm.startPrank(address(coprocessor));
        for (uint256 i; i < fs.length; ++i) {
            Request memory r = fs[i].request;
            ICoprocessorConsumer(r.consumer).onCoprocessorResponse{gas: r.callbackGasLimit}(
                r.requestId, fs[i].status, fs[i].output
            );
            total += vm.lastCallGas().gasTotalUsed;
        }
        vm.stopPrank();
        vm.revertToState(snapshot);
    }

    /// @notice An OpenZeppelin EIP-712 domain separator (version "1") computed by hand.
    function _domainSeparator(string memory name, uint256 chainId, address verifier) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes(name)),
                keccak256("1"),
                chainId,
                verifier
            )
        );
    }

    /// @notice Who the Coprocessor will think signed `signature` over `digest`.
    function _recover(bytes32 digest, bytes memory signature) internal pure returns (address) {
        (bytes32 r, bytes32 s) = abi.decode(signature, (bytes32, bytes32));
        return ecrecover(digest, uint8(signature[64]), r, s);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          PRIVATE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Insertion sort of private keys by their address; n is tiny.
    function _sortKeysByAddress(uint256[] memory keys) internal pure {
        for (uint256 i = 1; i < keys.length; ++i) {
            uint256 k = keys[i];
            address a = vm.addr(k);
            uint256 j = i;
            while (j > 0 && vm.addr(keys[j - 1]) > a) {
                keys[j] = keys[j - 1];
                --j;
            }
            keys[j] = k;
        }
    }

    function _copy(uint256[] memory xs) private pure returns (uint256[] memory ys) {
        ys = new uint256[](xs.length);
        for (uint256 i; i < xs.length; ++i) {
            ys[i] = xs[i];
        }
    }
}
