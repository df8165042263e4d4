// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Test.sol";

import {Coprocessor} from "../src/Coprocessor.sol";
import {KeyRegistry} from "../src/KeyRegistry.sol";
import {IEnclaveRegistry} from "../src/interfaces/IEnclaveRegistry.sol";
import {IKeyRegistry} from "../src/interfaces/IKeyRegistry.sol";

import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice The shared stack (a registry with the registered DEV `enclave`, a Coprocessor) plus a KeyRegistry,
/// and helpers to sign and publish key records as an enclave of the cluster would.
abstract contract KeyRegistryTestBase is CoprocessorTestBase {
    bytes32 internal constant INPUT_KEY = keccak256("input key, epoch 1");
    bytes32 internal constant SECRETS_KEY = keccak256("secrets key, epoch 1");
    bytes32 internal constant INPUT_KEY_2 = keccak256("input key, epoch 2");
    bytes32 internal constant SECRETS_KEY_2 = keccak256("secrets key, epoch 2");

    KeyRegistry internal keyRegistry;

    function setUp() public virtual override {
        super.setUp();
        keyRegistry = new KeyRegistry(address(coprocessor), address(registry));
    }

    /// @notice `key`'s signature of the record, over the digest `keyRegistry` computes.
    function _signKeys(uint256 key, bytes32 templateId, uint64 epoch, bytes32 inputKey, bytes32 secretsKey)
        internal
        view
        returns (bytes memory)
    {
        return _sign(key, keyRegistry.keysDigest(templateId, epoch, inputKey, secretsKey));
    }

    /// @notice Publishes a record signed by `key`.
    function _publishKeys(uint256 key, bytes32 templateId, uint64 epoch, bytes32 inputKey, bytes32 secretsKey)
        internal
    {
        keyRegistry.publish(
            templateId, epoch, inputKey, secretsKey, _signKeys(key, templateId, epoch, inputKey, secretsKey)
        );
    }

    /// @notice The EIP-712 `TemplateKeys` digest in the domain of the Coprocessor at `verifier` on `chainId`, by hand.
    function _keysDigestOn(
        uint256 chainId,
        address verifier,
        bytes32 templateId,
        uint64 epoch,
        bytes32 inputKey,
        bytes32 secretsKey
    ) internal pure returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("TemplateKeys(bytes32 templateId,uint64 epoch,bytes32 inputKey,bytes32 secretsKey)"),
                templateId,
                epoch,
                inputKey,
                secretsKey
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", _domainSeparator("Coprocessor", chainId, verifier), structHash));
    }
}

/// @notice Unit and fuzz tests of publishing template keys: who may sign, epoch ordering, fixed epoch keys.
contract KeyRegistryTest is KeyRegistryTestBase {
    /// @dev Storage slots (see `forge inspect KeyRegistry storageLayout`).
    uint256 internal constant LATEST_EPOCH_SLOT = 0;
    uint256 internal constant KEYS_SLOT = 1;

    bytes32 internal constant OTHER_TEMPLATE_ID = keccak256("other template bundle");

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     CONSTRUCTOR, VIEWS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_constructor_setsImmutables() public view {
        assertEq(keyRegistry.coprocessor(), address(coprocessor));
        assertEq(address(keyRegistry.enclaveRegistry()), address(registry));
        assertEq(keyRegistry.latestEpoch(), 0);
    }

    function test_TEMPLATE_KEYS_TYPEHASH_isTheTypeString() public view {
        assertEq(
            keyRegistry.TEMPLATE_KEYS_TYPEHASH(),
            keccak256("TemplateKeys(bytes32 templateId,uint64 epoch,bytes32 inputKey,bytes32 secretsKey)")
        );
    }

    function test_keysDigest_isEip712InTheCoprocessorsDomain() public view {
        bytes32 structHash =
            keccak256(abi.encode(keyRegistry.TEMPLATE_KEYS_TYPEHASH(), TEMPLATE_ID, uint64(7), INPUT_KEY, SECRETS_KEY));
        // The Coprocessor's own separator: enclaves sign records in the domain they sign responses in.
        assertEq(
            keyRegistry.keysDigest(TEMPLATE_ID, 7, INPUT_KEY, SECRETS_KEY),
            keccak256(abi.encodePacked("\x19\x01", coprocessor.domainSeparator(), structHash))
        );
        assertEq(
            keyRegistry.keysDigest(TEMPLATE_ID, 7, INPUT_KEY, SECRETS_KEY),
            _keysDigestOn(block.chainid, address(coprocessor), TEMPLATE_ID, 7, INPUT_KEY, SECRETS_KEY)
        );
    }

    function test_keysDigest_followsTheChainIdAfterAFork() public {
        vm.chainId(block.chainid + 1);
        assertEq(
            keyRegistry.keysDigest(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY),
            _keysDigestOn(block.chainid, address(coprocessor), TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY)
        );
        assertEq(keyRegistry.keysDigest(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY), _keysDigestWithCoprocessorSeparator());
    }

    function _keysDigestWithCoprocessorSeparator() internal view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(keyRegistry.TEMPLATE_KEYS_TYPEHASH(), TEMPLATE_ID, uint64(1), INPUT_KEY, SECRETS_KEY));
        return keccak256(abi.encodePacked("\x19\x01", coprocessor.domainSeparator(), structHash));
    }

    function test_keysOf_zeroWhenNeverPublished() public view {
        IKeyRegistry.TemplateKeys memory k = keyRegistry.keysOf(TEMPLATE_ID);
        assertEq(k.epoch, 0);
        assertEq(k.inputKey, bytes32(0));
        assertEq(k.secretsKey, bytes32(0));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          PUBLISH                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_publish_storesKeysAndEmits() public {
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        vm.expectEmit(true, true, true, true, address(keyRegistry));
        emit IKeyRegistry.KeysPublished(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, enclave);
        // Anyone may send it: the enclave's signature is what counts.
        vm.prank(stranger);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);

        IKeyRegistry.TemplateKeys memory k = keyRegistry.keysOf(TEMPLATE_ID);
        assertEq(k.epoch, 1);
        assertEq(k.inputKey, INPUT_KEY);
        assertEq(k.secretsKey, SECRETS_KEY);
        assertEq(keyRegistry.latestEpoch(), 1);
        assertEq(keyRegistry.keysOf(OTHER_TEMPLATE_ID).epoch, 0, "other templates untouched");
    }

    function test_publish_usesThreeSlots() public {
        _publishKeys(enclaveKey, TEMPLATE_ID, 9, INPUT_KEY, SECRETS_KEY);
        uint256 base = uint256(keccak256(abi.encode(TEMPLATE_ID, KEYS_SLOT)));
        assertEq(uint256(vm.load(address(keyRegistry), bytes32(base))), 9);
        assertEq(vm.load(address(keyRegistry), bytes32(base + 1)), INPUT_KEY);
        assertEq(vm.load(address(keyRegistry), bytes32(base + 2)), SECRETS_KEY);
        assertEq(uint256(vm.load(address(keyRegistry), bytes32(LATEST_EPOCH_SLOT))), 9);
    }

    function test_publish_newEpochReplacesKeysAndEmits() public {
        _publishKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        // Another enclave of the cluster may publish the next epoch; epochs may be skipped.
        uint256 otherKey = _registerEnclave("enclave 2", payee, uint64(block.timestamp) + ENCLAVE_TTL);
        bytes memory signature = _signKeys(otherKey, TEMPLATE_ID, 3, INPUT_KEY_2, SECRETS_KEY_2);
        vm.expectEmit(true, true, true, true, address(keyRegistry));
        emit IKeyRegistry.KeysPublished(TEMPLATE_ID, 3, INPUT_KEY_2, SECRETS_KEY_2, vm.addr(otherKey));
        keyRegistry.publish(TEMPLATE_ID, 3, INPUT_KEY_2, SECRETS_KEY_2, signature);

        IKeyRegistry.TemplateKeys memory k = keyRegistry.keysOf(TEMPLATE_ID);
        assertEq(k.epoch, 3);
        assertEq(k.inputKey, INPUT_KEY_2);
        assertEq(k.secretsKey, SECRETS_KEY_2);
        assertEq(keyRegistry.latestEpoch(), 3);
    }

    function test_publish_sameEpochSameKeysIsANoOp() public {
        _publishKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        // A second node (here: a second enclave) publishing the same record does not fail, and changes nothing.
        uint256 otherKey = _registerEnclave("enclave 2", payee, uint64(block.timestamp) + ENCLAVE_TTL);
        bytes memory signature = _signKeys(otherKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        vm.recordLogs();
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);
        assertEq(vm.getRecordedLogs().length, 0, "no event for a republish");

        IKeyRegistry.TemplateKeys memory k = keyRegistry.keysOf(TEMPLATE_ID);
        assertEq(k.epoch, 1);
        assertEq(k.inputKey, INPUT_KEY);
        assertEq(k.secretsKey, SECRETS_KEY);
    }

    function test_publish_revertsWhenSameEpochDifferentKeys() public {
        _publishKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        // Neither key of a published epoch can be swapped, by the same enclave or any other.
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY_2, SECRETS_KEY);
        vm.expectRevert(IKeyRegistry.EpochKeysDiffer.selector);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY_2, SECRETS_KEY, signature);

        uint256 otherKey = _registerEnclave("enclave 2", payee, uint64(block.timestamp) + ENCLAVE_TTL);
        signature = _signKeys(otherKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY_2);
        vm.expectRevert(IKeyRegistry.EpochKeysDiffer.selector);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY_2, signature);

        assertEq(keyRegistry.keysOf(TEMPLATE_ID).inputKey, INPUT_KEY);
        assertEq(keyRegistry.keysOf(TEMPLATE_ID).secretsKey, SECRETS_KEY);
    }

    function test_publish_revertsWhenEpochStale() public {
        _publishKeys(enclaveKey, TEMPLATE_ID, 5, INPUT_KEY, SECRETS_KEY);
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 4, INPUT_KEY_2, SECRETS_KEY_2);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.StaleEpoch.selector, uint64(5), uint64(4)));
        keyRegistry.publish(TEMPLATE_ID, 4, INPUT_KEY_2, SECRETS_KEY_2, signature);

        // Stale is per template: another template may still start at a lower epoch than `latestEpoch`.
        _publishKeys(enclaveKey, OTHER_TEMPLATE_ID, 4, INPUT_KEY_2, SECRETS_KEY_2);
        assertEq(keyRegistry.keysOf(OTHER_TEMPLATE_ID).epoch, 4);
        assertEq(keyRegistry.latestEpoch(), 5);
    }

    function test_publish_revertsWhenKeyZero() public {
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, bytes32(0), SECRETS_KEY);
        vm.expectRevert(IKeyRegistry.InvalidKey.selector);
        keyRegistry.publish(TEMPLATE_ID, 1, bytes32(0), SECRETS_KEY, signature);

        signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, bytes32(0));
        vm.expectRevert(IKeyRegistry.InvalidKey.selector);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, bytes32(0), signature);
    }

    function test_publish_revertsWhenEpochZero() public {
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 0, INPUT_KEY, SECRETS_KEY);
        vm.expectRevert(IKeyRegistry.InvalidEpoch.selector);
        keyRegistry.publish(TEMPLATE_ID, 0, INPUT_KEY, SECRETS_KEY, signature);
    }

    function test_publish_revertsWhenSignerNotRegistered() public {
        (address outsider, uint256 outsiderKey) = makeAddrAndKey("outsider");
        bytes memory signature = _signKeys(outsiderKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, outsider));
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);
    }

    function test_publish_revertsWhenEnclaveRevoked() public {
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        vm.prank(owner);
        registry.revokeEnclave(enclave);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, enclave));
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);
    }

    function test_publish_revertsWhenImageRevoked() public {
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        vm.prank(owner);
        registry.revokeImage(IMAGE_ID);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, enclave));
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);
    }

    function test_publish_revertsWhenEnclaveExpired() public {
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        (,, uint64 expiresAt,) = registry.enclaves(enclave);
        vm.warp(uint256(expiresAt) + 1);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, enclave));
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);
    }

    function test_publish_revertsWhenSignatureForAnotherTemplateEpochOrKeys() public {
        bytes[4] memory signatures = [
            _signKeys(enclaveKey, OTHER_TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY),
            _signKeys(enclaveKey, TEMPLATE_ID, 2, INPUT_KEY, SECRETS_KEY),
            _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY_2, SECRETS_KEY),
            _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY_2)
        ];
        bytes32 digest = keyRegistry.keysDigest(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        for (uint256 i; i < signatures.length; ++i) {
            // The signature recovers to some unrelated address, never an active enclave.
            address recovered = _recover(digest, signatures[i]);
            assertTrue(recovered != enclave);
            vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, recovered));
            keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signatures[i]);
        }
        assertEq(keyRegistry.keysOf(TEMPLATE_ID).epoch, 0);
    }

    function test_publish_revertsWhenSignedInAnotherCoprocessorsDomain() public {
        Coprocessor other = new Coprocessor(registry, templates, owner);
        KeyRegistry otherKeys = new KeyRegistry(address(other), address(registry));
        bytes32 otherDigest = otherKeys.keysDigest(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        assertEq(otherDigest, _keysDigestOn(block.chainid, address(other), TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY));
        bytes memory signature = _sign(enclaveKey, otherDigest);

        address recovered = _recover(keyRegistry.keysDigest(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY), signature);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, recovered));
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);

        otherKeys.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature); // valid where it was meant for
        assertEq(otherKeys.keysOf(TEMPLATE_ID).epoch, 1);
    }

    function test_publish_revertsWhenSignedOnAnotherChain() public {
        bytes memory signature = _sign(
            enclaveKey, _keysDigestOn(block.chainid + 1, address(coprocessor), TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY)
        );
        address recovered = _recover(keyRegistry.keysDigest(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY), signature);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, recovered));
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);

        // After a fork to that chain id the same signature is good there (the separator is recomputed).
        vm.chainId(block.chainid + 1);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);
        assertEq(keyRegistry.keysOf(TEMPLATE_ID).epoch, 1);
    }

    function test_publish_revertsWhenResponseSignatureReplayed() public {
        // Same domain, other type: a response signature is never a key record.
        bytes32 responseDigest = coprocessor.responseDigest(TEMPLATE_ID, INPUT_KEY, 0, abi.encode(SECRETS_KEY));
        bytes memory signature = _sign(enclaveKey, responseDigest);
        address recovered = _recover(keyRegistry.keysDigest(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY), signature);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.SignerNotActive.selector, recovered));
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, signature);
    }

    function test_publish_revertsWhenSignatureMalformed() public {
        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        (bytes32 r, bytes32 s) = abi.decode(signature, (bytes32, bytes32));
        uint8 v = uint8(signature[64]);

        vm.expectRevert(IKeyRegistry.InvalidSignature.selector);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, abi.encodePacked(r, s)); // 64 bytes
        vm.expectRevert(IKeyRegistry.InvalidSignature.selector);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, "");
        // The malleable twin (high s, flipped v) of a valid signature.
        bytes memory twin = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(IKeyRegistry.InvalidSignature.selector);
        keyRegistry.publish(TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY, twin);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        LATEST EPOCH                        */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_latestEpoch_isTheHighestOverAllTemplates() public {
        _publishKeys(enclaveKey, TEMPLATE_ID, 2, INPUT_KEY, SECRETS_KEY);
        assertEq(keyRegistry.latestEpoch(), 2);
        _publishKeys(enclaveKey, OTHER_TEMPLATE_ID, 1, INPUT_KEY, SECRETS_KEY);
        assertEq(keyRegistry.latestEpoch(), 2, "a lower epoch elsewhere does not lower it");
        _publishKeys(enclaveKey, OTHER_TEMPLATE_ID, 7, INPUT_KEY_2, SECRETS_KEY_2);
        assertEq(keyRegistry.latestEpoch(), 7);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            FUZZ                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Two records in either order: the later one lands iff its epoch is higher, and what is stored is
    /// always the record with the highest epoch seen.
    function testFuzz_publish_ordersByEpoch(uint64 first, uint64 second, bytes32 keySeed) public {
        first = uint64(bound(first, 1, type(uint64).max));
        second = uint64(bound(second, 1, type(uint64).max));
        bytes32 input2 = keccak256(abi.encode(keySeed, "input"));
        bytes32 secrets2 = keccak256(abi.encode(keySeed, "secrets"));
        _publishKeys(enclaveKey, TEMPLATE_ID, first, INPUT_KEY, SECRETS_KEY);

        bytes memory signature = _signKeys(enclaveKey, TEMPLATE_ID, second, input2, secrets2);
        if (second < first) {
            vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.StaleEpoch.selector, first, second));
        } else if (second == first) {
            vm.expectRevert(IKeyRegistry.EpochKeysDiffer.selector);
        }
        keyRegistry.publish(TEMPLATE_ID, second, input2, secrets2, signature);

        IKeyRegistry.TemplateKeys memory k = keyRegistry.keysOf(TEMPLATE_ID);
        assertEq(k.epoch, second > first ? second : first);
        assertEq(k.inputKey, second > first ? input2 : INPUT_KEY);
        assertEq(k.secretsKey, second > first ? secrets2 : SECRETS_KEY);
        assertEq(keyRegistry.latestEpoch(), k.epoch);
    }
}

/// @notice Gas snapshots of `publish`, written to `snapshots/KeyRegistry.json`.
/// @dev Note: as in `CoprocessorGasTest`, records and signatures are prepared in `setUp`, its own transaction,
/// so each measured call starts with cold accounts and storage. Steady state: template A holds epoch 1 and
/// template C epoch 2, so `latestEpoch` is 2 and non-zero. Figures are the callee frame's gas (no 21k
/// intrinsic, no calldata cost).
contract KeyRegistryGasTest is KeyRegistryTestBase {
    bytes32 internal constant TEMPLATE_A = keccak256("template A");
    bytes32 internal constant TEMPLATE_B = keccak256("template B");
    bytes32 internal constant TEMPLATE_C = keccak256("template C");

    bytes internal firstSig;
    bytes internal nextEpochSig;
    bytes internal raiseLatestSig;
    bytes internal republishSig;

    function setUp() public override {
        super.setUp();
        _publishKeys(enclaveKey, TEMPLATE_A, 1, INPUT_KEY, SECRETS_KEY);
        _publishKeys(enclaveKey, TEMPLATE_C, 2, INPUT_KEY_2, SECRETS_KEY_2);
        firstSig = _signKeys(enclaveKey, TEMPLATE_B, 2, INPUT_KEY_2, SECRETS_KEY_2);
        nextEpochSig = _signKeys(enclaveKey, TEMPLATE_A, 2, INPUT_KEY_2, SECRETS_KEY_2);
        raiseLatestSig = _signKeys(enclaveKey, TEMPLATE_A, 3, INPUT_KEY_2, SECRETS_KEY_2);
        republishSig = _signKeys(enclaveKey, TEMPLATE_C, 2, INPUT_KEY_2, SECRETS_KEY_2);
    }

    function test_publish_gasFirstKeysOfATemplate() public {
        keyRegistry.publish(TEMPLATE_B, 2, INPUT_KEY_2, SECRETS_KEY_2, firstSig);
        vm.snapshotGasLastCall("KeyRegistry", "publish (a template's first keys)");
        assertEq(keyRegistry.keysOf(TEMPLATE_B).epoch, 2);
    }

    function test_publish_gasNewEpoch() public {
        keyRegistry.publish(TEMPLATE_A, 2, INPUT_KEY_2, SECRETS_KEY_2, nextEpochSig);
        vm.snapshotGasLastCall("KeyRegistry", "publish (new epoch)");
        assertEq(keyRegistry.keysOf(TEMPLATE_A).epoch, 2);
    }

    function test_publish_gasNewEpochRaisingLatestEpoch() public {
        keyRegistry.publish(TEMPLATE_A, 3, INPUT_KEY_2, SECRETS_KEY_2, raiseLatestSig);
        vm.snapshotGasLastCall("KeyRegistry", "publish (new epoch, raises latestEpoch)");
        assertEq(keyRegistry.latestEpoch(), 3);
    }

    function test_publish_gasRepublishNoOp() public {
        vm.recordLogs();
        keyRegistry.publish(TEMPLATE_C, 2, INPUT_KEY_2, SECRETS_KEY_2, republishSig);
        vm.snapshotGasLastCall("KeyRegistry", "publish (same epoch and keys again: no-op)");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 0);
    }
}
