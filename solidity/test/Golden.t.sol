// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {Coprocessor} from "../src/Coprocessor.sol";
import {EnclaveRegistry} from "../src/EnclaveRegistry.sol";
import {KeyRegistry} from "../src/KeyRegistry.sol";
import {IEnclaveRegistry, EnclaveRecord} from "../src/interfaces/IEnclaveRegistry.sol";
import {IKeyRegistry} from "../src/interfaces/IKeyRegistry.sol";
import {Request, RequestLib} from "../src/libraries/RequestLib.sol";
import {Quote, SignedQuote, QuoteLib} from "../src/libraries/QuoteLib.sol";

/// @notice Checks the numbers the Python side computed (tests/golden.py) against the real contracts.
contract GoldenTest is Test {
    string internal json;
    uint256 internal chainId;
    address internal coprocessorAddress;

    function setUp() public {
        json = vm.readFile("test/vectors/golden.json");
        chainId = vm.parseJsonUint(json, ".chainId");
        coprocessorAddress = vm.parseJsonAddress(json, ".coprocessor");
        vm.chainId(chainId);
    }

    function _key(uint256 i, string memory field) internal pure returns (string memory) {
        return string.concat(".vectors[", vm.toString(i), "].", field);
    }

    function _request(uint256 i) internal view returns (Request memory) {
        return Request({
            requestId: vm.parseJsonBytes32(json, _key(i, "requestId")),
            consumer: vm.parseJsonAddress(json, _key(i, "consumer")),
            templateId: vm.parseJsonBytes32(json, _key(i, "templateId")),
            inputHash: vm.parseJsonBytes32(json, _key(i, "inputHash")),
            callbackGasLimit: uint32(vm.parseJsonUint(json, _key(i, "callbackGasLimit"))),
            fee: uint96(vm.parseJsonUint(json, _key(i, "fee"))),
            deadline: uint64(vm.parseJsonUint(json, _key(i, "deadline"))),
            anchorBlock: uint64(vm.parseJsonUint(json, _key(i, "anchorBlock"))),
            anchorHash: vm.parseJsonBytes32(json, _key(i, "anchorHash"))
        });
    }

    function test_golden_requestIdCommitmentDigestAndSignature() public {
        deployCodeTo(
            "Coprocessor.sol:Coprocessor", abi.encode(address(0), address(0), address(this)), coprocessorAddress
        );
        Coprocessor coprocessor = Coprocessor(payable(coprocessorAddress));
        address enclave = vm.parseJsonAddress(json, ".enclave");

        for (uint256 i; i < 3; ++i) {
            Request memory r = _request(i);
            uint256 nonce = vm.parseJsonUint(json, _key(i, "nonce"));
            assertEq(r.requestId, keccak256(abi.encode(chainId, coprocessorAddress, nonce)), "requestId");

            bytes32 commitment = keccak256(abi.encode(r));
            assertEq(commitment, vm.parseJsonBytes32(json, _key(i, "commitment")), "commitment");

            uint8 status = uint8(vm.parseJsonUint(json, _key(i, "status")));
            bytes memory output = vm.parseJsonBytes(json, _key(i, "output"));
            bytes32 digest = coprocessor.responseDigest(r.requestId, commitment, status, output);
            assertEq(digest, vm.parseJsonBytes32(json, _key(i, "digest")), "digest");

            assertEq(ECDSA.recover(digest, vm.parseJsonBytes(json, _key(i, "signature"))), enclave, "signer");
        }
    }

    function test_golden_registrationDigest() public {
        address registryAddress = vm.parseJsonAddress(json, ".registry");
        address[] memory attestors = new address[](1);
        attestors[0] = address(this);
        deployCodeTo(
            "EnclaveRegistry.sol:EnclaveRegistry", abi.encode(address(this), true, attestors, 1), registryAddress
        );
        EnclaveRecord memory record = EnclaveRecord({
            enclave: vm.parseJsonAddress(json, ".registration.enclave"),
            imageId: vm.parseJsonBytes32(json, ".registration.imageId"),
            teeType: uint8(vm.parseJsonUint(json, ".registration.teeType")),
            payee: vm.parseJsonAddress(json, ".registration.payee"),
            expiresAt: uint64(vm.parseJsonUint(json, ".registration.expiresAt")),
            quoteHash: vm.parseJsonBytes32(json, ".registration.quoteHash")
        });
        assertEq(
            EnclaveRegistry(registryAddress).registrationDigest(record),
            vm.parseJsonBytes32(json, ".registration.digest"),
            "registration digest"
        );
    }

    function _quote(uint256 i) internal view returns (Quote memory) {
        string memory k = string.concat(".quotes[", vm.toString(i), "].");
        return Quote({
            templateId: vm.parseJsonBytes32(json, string.concat(k, "templateId")),
            inputHash: vm.parseJsonBytes32(json, string.concat(k, "inputHash")),
            outputHash: vm.parseJsonBytes32(json, string.concat(k, "outputHash")),
            consumer: vm.parseJsonAddress(json, string.concat(k, "consumer")),
            chainId: vm.parseJsonUint(json, string.concat(k, "chainId")),
            deadline: uint64(vm.parseJsonUint(json, string.concat(k, "deadline"))),
            anchorBlock: uint64(vm.parseJsonUint(json, string.concat(k, "anchorBlock"))),
            anchorHash: vm.parseJsonBytes32(json, string.concat(k, "anchorHash")),
            nonce: vm.parseJsonBytes32(json, string.concat(k, "nonce"))
        });
    }

    function test_golden_quoteDigestSignatureAndEncoding() public {
        deployCodeTo(
            "Coprocessor.sol:Coprocessor", abi.encode(address(0), address(0), address(this)), coprocessorAddress
        );
        bytes32 separator = QuoteLib.domainSeparator(coprocessorAddress);
        assertEq(separator, Coprocessor(payable(coprocessorAddress)).domainSeparator(), "domain");
        address enclave = vm.parseJsonAddress(json, ".enclave");

        for (uint256 i; i < 2; ++i) {
            string memory k = string.concat(".quotes[", vm.toString(i), "].");
            Quote memory q = _quote(i);
            bytes memory output = vm.parseJsonBytes(json, string.concat(k, "output"));
            assertEq(q.outputHash, keccak256(output), "outputHash");
            assertEq(QuoteLib.structHash(q), vm.parseJsonBytes32(json, string.concat(k, "structHash")), "structHash");
            bytes32 digest = QuoteLib.digest(q, separator);
            assertEq(digest, vm.parseJsonBytes32(json, string.concat(k, "digest")), "digest");
            bytes memory signature = vm.parseJsonBytes(json, string.concat(k, "signature"));
            assertEq(ECDSA.recover(digest, signature), enclave, "signer");
            assertEq(
                abi.encode(SignedQuote(q, output, enclave, signature)),
                vm.parseJsonBytes(json, string.concat(k, "quoteData")),
                "quoteData"
            );
        }
    }

    function test_golden_templateKeysDigestAndSignaturePublish() public {
        deployCodeTo(
            "Coprocessor.sol:Coprocessor", abi.encode(address(0), address(0), address(this)), coprocessorAddress
        );
        address enclave = vm.parseJsonAddress(json, ".enclave");
        address registryAddress = vm.parseJsonAddress(json, ".registry");
        // Only the registry's verdict on the golden enclave is mocked: the digest and signature checks are real.
        vm.mockCall(registryAddress, abi.encodeCall(IEnclaveRegistry.isActive, (enclave)), abi.encode(true));
        KeyRegistry keyRegistry = new KeyRegistry(coprocessorAddress, registryAddress);

        for (uint256 i; i < 2; ++i) {
            string memory k = string.concat(".templateKeys[", vm.toString(i), "].");
            bytes32 templateId = vm.parseJsonBytes32(json, string.concat(k, "templateId"));
            uint64 epoch = uint64(vm.parseJsonUint(json, string.concat(k, "epoch")));
            bytes32 inputKey = vm.parseJsonBytes32(json, string.concat(k, "inputKey"));
            bytes32 secretsKey = vm.parseJsonBytes32(json, string.concat(k, "secretsKey"));
            bytes32 digest = keyRegistry.keysDigest(templateId, epoch, inputKey, secretsKey);
            assertEq(digest, vm.parseJsonBytes32(json, string.concat(k, "digest")), "digest");
            bytes memory signature = vm.parseJsonBytes(json, string.concat(k, "signature"));
            assertEq(ECDSA.recover(digest, signature), enclave, "signer");

            vm.expectEmit(true, true, true, true, address(keyRegistry));
            emit IKeyRegistry.KeysPublished(templateId, epoch, inputKey, secretsKey, enclave);
            keyRegistry.publish(templateId, epoch, inputKey, secretsKey, signature);
        }
    }
}
