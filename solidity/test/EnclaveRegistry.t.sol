// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {EnclaveRegistry} from "../src/EnclaveRegistry.sol";
import {IEnclaveRegistry, EnclaveRecord} from "../src/interfaces/IEnclaveRegistry.sol";

import {CoprocessorTestBase} from "./utils/CoprocessorTestBase.sol";

/// @notice Unit and fuzz tests of the image allowlist, k-of-n registration and enclave lifecycle.
contract EnclaveRegistryTest is CoprocessorTestBase {
    bytes32 internal constant SGX_IMAGE = keccak256("sgx-image");

    address internal newEnclave;
    uint256 internal newEnclaveKey;

    function setUp() public override {
        super.setUp();
        (newEnclave, newEnclaveKey) = makeAddrAndKey("new-enclave");
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          HELPERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice A valid, not yet registered record for `newEnclave`.
    function _newRecord() internal view returns (EnclaveRecord memory) {
        return _record(newEnclave, payee, uint64(block.timestamp) + ENCLAVE_TTL);
    }

    /// @notice A registry deployed for production: DEV enclaves are refused for good.
    function _productionRegistry() internal returns (EnclaveRegistry prod) {
        prod = new EnclaveRegistry(owner, false, attestors, THRESHOLD);
        vm.prank(owner);
        prod.allowImage(SGX_IMAGE, SGX);
    }

    /// @notice Keys of `attestorKeys[i]` and `attestorKeys[j]`.
    function _keys(uint256 i, uint256 j) internal view returns (uint256[] memory keys) {
        keys = new uint256[](2);
        keys[0] = attestorKeys[i];
        keys[1] = attestorKeys[j];
    }

    /// @notice The EIP-712 registration digest for `record` on `chainId` and `verifier`, computed by hand.
    function _registrationDigestOn(uint256 chainId, address verifier, EnclaveRecord memory record)
        internal
        pure
        returns (bytes32)
    {
        bytes32 domain = _domainSeparator("EnclaveRegistry", chainId, verifier);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Registration(address enclave,bytes32 imageId,uint8 teeType,address payee,uint64 expiresAt,bytes32 quoteHash)"
                ),
                record.enclave,
                record.imageId,
                record.teeType,
                record.payee,
                record.expiresAt,
                record.quoteHash
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        CONSTRUCTOR                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_constructor_setsState() public view {
        assertTrue(registry.allowDev());
        assertEq(registry.threshold(), THRESHOLD);
        assertEq(registry.owner(), owner);
        for (uint256 i; i < ATTESTOR_COUNT; ++i) {
            assertTrue(registry.isAttestor(attestors[i]));
        }
        assertFalse(registry.isAttestor(stranger));
    }

    function test_constructor_revertsWhenThresholdZero() public {
        vm.expectRevert(IEnclaveRegistry.InvalidThreshold.selector);
        new EnclaveRegistry(owner, true, attestors, 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          REGISTER                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_register_storesActiveEnclave() public {
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(registry, record);

        vm.expectEmit(true, true, true, true, address(registry));
        emit IEnclaveRegistry.EnclaveRegistered(newEnclave, IMAGE_ID, DEV, payee, record.expiresAt, QUOTE_HASH);
        // Anyone may submit: the approvals are what count.
        vm.prank(stranger);
        registry.register(record, approvals);

        (bytes32 imageId, address storedPayee, uint64 expiresAt, bool revoked) = registry.enclaves(newEnclave);
        assertEq(imageId, IMAGE_ID);
        assertEq(storedPayee, payee);
        assertEq(expiresAt, record.expiresAt);
        assertFalse(revoked);
        assertTrue(registry.isActive(newEnclave));
        assertEq(registry.activePayee(newEnclave), payee);
    }

    function test_register_acceptsEveryAttestor() public {
        EnclaveRecord memory record = _newRecord();
        registry.register(record, _approvals(registry.registrationDigest(record), attestorKeys));
        assertTrue(registry.isActive(newEnclave));
    }

    function test_register_acceptsAnyThresholdSubset() public {
        EnclaveRecord memory record = _newRecord();
        registry.register(record, _approvals(registry.registrationDigest(record), _keys(2, 0)));
        assertTrue(registry.isActive(newEnclave));
    }

    function test_register_acceptsSgxOnProductionRegistry() public {
        EnclaveRegistry prod = _productionRegistry();
        EnclaveRecord memory record = _newRecord();
        record.imageId = SGX_IMAGE;
        record.teeType = SGX;
        _register(prod, record);
        assertTrue(prod.isActive(newEnclave));
    }

    function test_register_revertsWhenDevNotAllowed() public {
        EnclaveRegistry prod = _productionRegistry();
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(prod, record);
        vm.expectRevert(IEnclaveRegistry.DevNotAllowed.selector);
        prod.register(record, approvals);

        // Not even through an SGX image: the record's own type is checked first.
        record.imageId = SGX_IMAGE;
        approvals = _approvals(prod, record);
        vm.expectRevert(IEnclaveRegistry.DevNotAllowed.selector);
        prod.register(record, approvals);
    }

    function test_register_revertsWhenImageNotAllowed() public {
        EnclaveRecord memory record = _newRecord();
        record.imageId = keccak256("unknown image");
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.ImageNotAllowed.selector, record.imageId));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenImageRevoked() public {
        vm.prank(owner);
        registry.revokeImage(IMAGE_ID);
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.ImageNotAllowed.selector, IMAGE_ID));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenTeeTypeMismatch() public {
        EnclaveRecord memory record = _newRecord();
        record.teeType = TDX;
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.TeeTypeMismatch.selector, DEV, TDX));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenAlreadyRegistered() public {
        EnclaveRecord memory record = _record(enclave, makeAddr("thief"), uint64(block.timestamp) + 2 * ENCLAVE_TTL);
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.AlreadyRegistered.selector, enclave));
        registry.register(record, approvals);
        assertEq(registry.activePayee(enclave), payee);
    }

    function test_register_revertsWhenReRegisteringRevokedKey() public {
        vm.prank(owner);
        registry.revokeEnclave(enclave);
        EnclaveRecord memory record = _record(enclave, payee, uint64(block.timestamp) + ENCLAVE_TTL);
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.AlreadyRegistered.selector, enclave));
        registry.register(record, approvals);
        assertFalse(registry.isActive(enclave));
    }

    function test_register_revertsWhenAlreadyExpired() public {
        EnclaveRecord memory record = _newRecord();
        record.expiresAt = uint64(block.timestamp);
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(IEnclaveRegistry.InvalidRecord.selector);
        registry.register(record, approvals);
    }

    function test_register_revertsWhenPayeeZero() public {
        EnclaveRecord memory record = _newRecord();
        record.payee = address(0);
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(IEnclaveRegistry.InvalidRecord.selector);
        registry.register(record, approvals);
    }

    function test_register_revertsWhenEnclaveZero() public {
        EnclaveRecord memory record = _newRecord();
        record.enclave = address(0);
        bytes[] memory approvals = _approvals(registry, record);
        vm.expectRevert(IEnclaveRegistry.InvalidRecord.selector);
        registry.register(record, approvals);
    }

    function test_register_revertsWhenNotEnoughApprovals() public {
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = new bytes[](1);
        approvals[0] = _sign(attestorKeys[0], registry.registrationDigest(record));
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.NotEnoughApprovals.selector, 1, THRESHOLD));
        registry.register(record, approvals);

        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.NotEnoughApprovals.selector, 0, THRESHOLD));
        registry.register(record, new bytes[](0));
    }

    function test_register_revertsWhenApproverNotAttestor() public {
        EnclaveRecord memory record = _newRecord();
        (address outsider, uint256 outsiderKey) = makeAddrAndKey("outsider");
        uint256[] memory keys = new uint256[](2);
        keys[0] = attestorKeys[0];
        keys[1] = outsiderKey;
        bytes[] memory approvals = _approvals(registry.registrationDigest(record), keys);
        // The outsider's position in ascending signer order.
        uint256 index = outsider < attestors[0] ? 0 : 1;
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, index));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenApprovalDuplicated() public {
        EnclaveRecord memory record = _newRecord();
        bytes memory sig = _sign(attestorKeys[0], registry.registrationDigest(record));
        bytes[] memory approvals = new bytes[](2);
        approvals[0] = sig;
        approvals[1] = sig;
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 1));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenApprovalsUnsorted() public {
        EnclaveRecord memory record = _newRecord();
        bytes[] memory sorted = _approvals(registry, record);
        bytes[] memory approvals = new bytes[](2);
        approvals[0] = sorted[1];
        approvals[1] = sorted[0];
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 1));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenApprovalGarbage() public {
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(registry, record);
        approvals[1] = abi.encodePacked(bytes32(uint256(0x11)), bytes32(uint256(0x22)), uint8(0x33));
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 1));
        registry.register(record, approvals);

        approvals[1] = hex"deadbeef";
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 1));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenApprovalForOtherRecord() public {
        // Approvals for one payee cannot be reused to route fees to another.
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(registry, record);
        record.payee = makeAddr("thief");
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 0));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenApprovalForOtherRegistry() public {
        EnclaveRegistry other = new EnclaveRegistry(owner, true, attestors, THRESHOLD);
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(other, record);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 0));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenApprovalForOtherChain() public {
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(registry, record);
        vm.chainId(block.chainid + 1);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 0));
        registry.register(record, approvals);
    }

    function test_register_revertsWhenAttestorRemoved() public {
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(registry, record);
        vm.prank(owner);
        registry.setAttestor(attestors[1], false);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 1));
        registry.register(record, approvals);
    }

    function test_registrationDigest_isEip712OverRecord() public view {
        EnclaveRecord memory record = _newRecord();
        assertEq(registry.registrationDigest(record), _registrationDigestOn(block.chainid, address(registry), record));
        assertEq(
            registry.REGISTRATION_TYPEHASH(),
            keccak256(
                "Registration(address enclave,bytes32 imageId,uint8 teeType,address payee,uint64 expiresAt,bytes32 quoteHash)"
            )
        );
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                      LIFECYCLE & VIEWS                     */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_revokeEnclave_deactivates() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IEnclaveRegistry.EnclaveRevoked(enclave);
        vm.prank(owner);
        registry.revokeEnclave(enclave);
        assertFalse(registry.isActive(enclave));
        assertEq(registry.activePayee(enclave), address(0));
    }

    function test_revokeEnclave_revertsWhenUnknown() public {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.UnknownEnclave.selector, stranger));
        registry.revokeEnclave(stranger);
    }

    function test_revokeImage_deactivatesItsEnclaves() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IEnclaveRegistry.ImageRevoked(IMAGE_ID);
        vm.prank(owner);
        registry.revokeImage(IMAGE_ID);
        assertFalse(registry.isActive(enclave));
        assertEq(registry.activePayee(enclave), address(0));
        (EnclaveRegistry.ImageStatus status,) = registry.images(IMAGE_ID);
        assertEq(uint8(status), uint8(EnclaveRegistry.ImageStatus.Revoked));
    }

    /// @dev Revoked images are kept as bits by image index, 256 to a word: revoking one image touches only its
    /// own enclaves, whichever word its index falls in.
    function test_revokeImage_deactivatesOnlyItsEnclavesAcrossBitmapWords() public {
        // IMAGE_ID has index 0; list 300 more so the last ones fall in the second word.
        bytes32[] memory ids = new bytes32[](301);
        ids[0] = IMAGE_ID;
        vm.startPrank(owner);
        for (uint256 i = 1; i <= 300; ++i) {
            ids[i] = keccak256(abi.encode("image", i));
            registry.allowImage(ids[i], DEV);
        }
        vm.stopPrank();
        uint256[4] memory picks = [uint256(255), 256, 257, 300];
        address[4] memory keys;
        for (uint256 j; j < 4; ++j) {
            (keys[j],) = makeAddrAndKey(string.concat("enclave-of-image-", vm.toString(picks[j])));
            EnclaveRecord memory record = _record(keys[j], payee, uint64(block.timestamp) + ENCLAVE_TTL);
            record.imageId = ids[picks[j]];
            _register(registry, record);
            (bytes32 imageId,,,) = registry.enclaves(keys[j]);
            assertEq(imageId, ids[picks[j]]);
        }

        vm.prank(owner);
        registry.revokeImage(ids[256]);
        assertTrue(registry.isActive(enclave));
        assertTrue(registry.isActive(keys[0]));
        assertFalse(registry.isActive(keys[1]));
        assertTrue(registry.isActive(keys[2]));
        assertTrue(registry.isActive(keys[3]));

        vm.prank(owner);
        registry.revokeImage(IMAGE_ID);
        assertFalse(registry.isActive(enclave));
        assertTrue(registry.isActive(keys[0]));
        assertTrue(registry.isActive(keys[3]));
    }

    function test_enclaves_zeroForUnknown() public view {
        (bytes32 imageId, address storedPayee, uint64 expiresAt, bool revoked) = registry.enclaves(stranger);
        assertEq(imageId, bytes32(0));
        assertEq(storedPayee, address(0));
        assertEq(expiresAt, 0);
        assertFalse(revoked);
    }

    function test_enclaves_showsRevocation() public {
        vm.prank(owner);
        registry.revokeEnclave(enclave);
        (bytes32 imageId, address storedPayee,, bool revoked) = registry.enclaves(enclave);
        assertEq(imageId, IMAGE_ID);
        assertEq(storedPayee, payee);
        assertTrue(revoked);
    }

    function test_revokeImage_revertsWhenNotAllowed() public {
        bytes32 unknown = keccak256("unknown image");
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.ImageNotAllowed.selector, unknown));
        registry.revokeImage(unknown);

        registry.revokeImage(IMAGE_ID);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.ImageNotAllowed.selector, IMAGE_ID));
        registry.revokeImage(IMAGE_ID);
        vm.stopPrank();
    }

    function test_isActive_falseAfterExpiry() public {
        (,, uint64 expiresAt,) = registry.enclaves(enclave);
        // Active through the expiry second itself, inactive after.
        vm.warp(expiresAt);
        assertTrue(registry.isActive(enclave));
        vm.warp(uint256(expiresAt) + 1);
        assertFalse(registry.isActive(enclave));
        assertEq(registry.activePayee(enclave), address(0));
    }

    function test_isActive_falseForUnknown() public view {
        assertFalse(registry.isActive(stranger));
        assertFalse(registry.isActive(address(0)));
        assertEq(registry.activePayee(stranger), address(0));
    }

    function test_allowImage_listsImage() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IEnclaveRegistry.ImageAllowed(SGX_IMAGE, SGX);
        vm.prank(owner);
        registry.allowImage(SGX_IMAGE, SGX);
        (EnclaveRegistry.ImageStatus status, uint8 teeType) = registry.images(SGX_IMAGE);
        assertEq(uint8(status), uint8(EnclaveRegistry.ImageStatus.Allowed));
        assertEq(teeType, SGX);
    }

    function test_allowImage_revertsWhenDevNotAllowed() public {
        EnclaveRegistry prod = _productionRegistry();
        vm.prank(owner);
        vm.expectRevert(IEnclaveRegistry.DevNotAllowed.selector);
        prod.allowImage(IMAGE_ID, DEV);
    }

    function test_allowImage_revertsWhenAlreadyListed() public {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.ImageAlreadyListed.selector, IMAGE_ID));
        registry.allowImage(IMAGE_ID, DEV);
    }

    function test_allowImage_revertsWhenRevoked() public {
        // Revocation is final: a revoked measurement can never come back.
        vm.startPrank(owner);
        registry.revokeImage(IMAGE_ID);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.ImageAlreadyListed.selector, IMAGE_ID));
        registry.allowImage(IMAGE_ID, DEV);
        vm.stopPrank();
    }

    /// @dev Note: documents current behaviour. `allowImage` does not check `teeType` against the
    /// `TeeType` enum, so an image can be listed for a type (here 7) no enclave can meaningfully have.
    function test_allowImage_revertsOnUndefinedTeeType() public {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidTeeType.selector, uint8(7)));
        registry.allowImage(SGX_IMAGE, 7);
    }

    function test_setAttestor_addsAndRemoves() public {
        (address newcomer, uint256 newcomerKey) = makeAddrAndKey("newcomer");
        vm.expectEmit(true, true, true, true, address(registry));
        emit IEnclaveRegistry.AttestorSet(newcomer, true);
        vm.prank(owner);
        registry.setAttestor(newcomer, true);
        assertTrue(registry.isAttestor(newcomer));

        // The newcomer's approval now counts.
        EnclaveRecord memory record = _newRecord();
        uint256[] memory keys = new uint256[](2);
        keys[0] = attestorKeys[0];
        keys[1] = newcomerKey;
        registry.register(record, _approvals(registry.registrationDigest(record), keys));
        assertTrue(registry.isActive(newEnclave));

        vm.prank(owner);
        registry.setAttestor(newcomer, false);
        assertFalse(registry.isAttestor(newcomer));
    }

    function test_setThreshold_raisesRequirement() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IEnclaveRegistry.ThresholdSet(3);
        vm.prank(owner);
        registry.setThreshold(3);
        assertEq(registry.threshold(), 3);

        EnclaveRecord memory record = _newRecord();
        bytes[] memory two = _approvals(registry, record);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.NotEnoughApprovals.selector, 2, 3));
        registry.register(record, two);
        registry.register(record, _approvals(registry.registrationDigest(record), attestorKeys));
        assertTrue(registry.isActive(newEnclave));
    }

    function test_setThreshold_revertsWhenAboveTheAttestors() public {
        uint256 count = registry.attestorCount();
        vm.prank(owner);
        vm.expectRevert(IEnclaveRegistry.InvalidThreshold.selector);
        registry.setThreshold(count + 1);
        vm.prank(owner);
        registry.setThreshold(count);
        assertEq(registry.threshold(), count);
    }

    function test_setAttestor_revertsWhenRemovalLeavesFewerThanTheThreshold() public {
        vm.startPrank(owner);
        registry.setThreshold(registry.attestorCount());
        vm.expectRevert(IEnclaveRegistry.InvalidThreshold.selector);
        registry.setAttestor(attestors[0], false);
        vm.stopPrank();
        assertTrue(registry.isAttestor(attestors[0]));
    }

    function test_setAttestor_countsEachAttestorOnce_refusesTheZeroAddress() public {
        uint256 count = registry.attestorCount();
        vm.startPrank(owner);
        registry.setAttestor(attestors[0], true); // already one
        assertEq(registry.attestorCount(), count);
        registry.setAttestor(stranger, false); // never was one
        assertEq(registry.attestorCount(), count);
        vm.expectRevert(IEnclaveRegistry.InvalidAttestor.selector);
        registry.setAttestor(address(0), true);
        vm.stopPrank();
    }

    function test_transferOwnership_takesEffectOnlyWhenAccepted() public {
        vm.prank(owner);
        registry.transferOwnership(stranger);
        assertEq(registry.owner(), owner);
        vm.prank(stranger);
        registry.acceptOwnership();
        assertEq(registry.owner(), stranger);
    }

    function test_setThreshold_revertsWhenZero() public {
        vm.prank(owner);
        vm.expectRevert(IEnclaveRegistry.InvalidThreshold.selector);
        registry.setThreshold(0);
        assertEq(registry.threshold(), THRESHOLD);
    }

    function test_admin_revertsWhenNotOwner() public {
        bytes memory unauthorized = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);
        vm.startPrank(stranger);
        vm.expectRevert(unauthorized);
        registry.allowImage(SGX_IMAGE, SGX);
        vm.expectRevert(unauthorized);
        registry.revokeImage(IMAGE_ID);
        vm.expectRevert(unauthorized);
        registry.revokeEnclave(enclave);
        vm.expectRevert(unauthorized);
        registry.setAttestor(stranger, true);
        vm.expectRevert(unauthorized);
        registry.setThreshold(1);
        vm.stopPrank();
        assertTrue(registry.isActive(enclave));
        assertFalse(registry.isAttestor(stranger));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           FUZZ                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Keys that are not attestors never register an enclave, however they are ordered.
    function testFuzz_register_revertsForNonAttestorKeys(uint256 k0, uint256 k1) public {
        k0 = bound(k0, 1, SECP256K1_N - 1);
        k1 = bound(k1, 1, SECP256K1_N - 1);
        vm.assume(!registry.isAttestor(vm.addr(k0)) && !registry.isAttestor(vm.addr(k1)));
        uint256[] memory keys = new uint256[](2);
        keys[0] = k0;
        keys[1] = k1;
        EnclaveRecord memory record = _newRecord();
        bytes[] memory approvals = _approvals(registry.registrationDigest(record), keys);
        vm.expectRevert(abi.encodeWithSelector(IEnclaveRegistry.InvalidApproval.selector, 0));
        registry.register(record, approvals);
    }

    function testFuzz_isActive_tracksExpiry(uint64 ttl, uint64 elapsed) public {
        ttl = uint64(bound(ttl, 1, 365 days));
        elapsed = uint64(bound(elapsed, 0, 2 * 365 days));
        EnclaveRecord memory record = _record(newEnclave, payee, uint64(block.timestamp) + ttl);
        _register(registry, record);
        vm.warp(block.timestamp + elapsed);
        assertEq(registry.isActive(newEnclave), elapsed <= ttl);
    }
}
