// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {TemplateRegistry} from "../src/TemplateRegistry.sol";
import {ITemplateRegistry} from "../src/interfaces/ITemplateRegistry.sol";

/// @notice Unit and fuzz tests of publishing, name ownership, deprecation and the views the Coprocessor reads.
contract TemplateRegistryTest is Test {
    /// @dev Storage slot of `_templates` (see `forge inspect TemplateRegistry storageLayout`).
    uint256 internal constant TEMPLATES_SLOT = 0;

    bytes32 internal constant ID = keccak256("bundle v1");
    bytes32 internal constant ID_V2 = keccak256("bundle v2");
    string internal constant NAME = "median-price";
    string internal constant URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    uint96 internal constant FEE = 0.002 ether;

    address internal author = makeAddr("author");
    address internal rival = makeAddr("rival");

    TemplateRegistry internal templates;

    function setUp() public {
        templates = new TemplateRegistry();
    }

    function _publish(address who, bytes32 id, string memory name, string memory version, uint96 fee) internal {
        vm.prank(who);
        templates.publish(id, name, version, URI, fee);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          PUBLISH                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_publish_storesTemplateAndEmits() public {
        vm.expectEmit(true, true, true, true, address(templates));
        emit ITemplateRegistry.TemplatePublished(ID, author, NAME, "1.0.0", URI, FEE);
        _publish(author, ID, NAME, "1.0.0", FEE);

        ITemplateRegistry.Template memory t = templates.templateOf(ID);
        assertEq(t.author, author);
        assertEq(t.authorFee, FEE);
        assertFalse(t.deprecated);
        assertEq(t.name, NAME);
        assertEq(t.version, "1.0.0");
        assertEq(t.uri, URI);
        assertEq(templates.nameOwner(NAME), author);
    }

    function test_publish_packsAuthorAndFeeInOneSlot() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        bytes32 slot = vm.load(address(templates), keccak256(abi.encode(ID, TEMPLATES_SLOT)));
        assertEq(uint256(slot), uint256(uint160(author)) | (uint256(FEE) << 160));
        (address a, uint96 fee) = templates.authorOf(ID);
        assertEq(a, author);
        assertEq(fee, FEE);
    }

    function test_publish_acceptsZeroFeeAndEmptyVersionAndUri() public {
        vm.prank(author);
        templates.publish(ID, NAME, "", "", 0);
        (address a, uint96 fee, bool deprecated) = templates.termsOf(ID);
        assertEq(a, author);
        assertEq(fee, 0);
        assertFalse(deprecated);
    }

    function test_publish_revertsWhenIdAlreadyPublished() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        // Not by the author with other terms, nor by anyone under another name.
        vm.expectRevert(abi.encodeWithSelector(ITemplateRegistry.TemplateAlreadyPublished.selector, ID));
        _publish(author, ID, NAME, "1.0.1", FEE + 1);
        vm.expectRevert(abi.encodeWithSelector(ITemplateRegistry.TemplateAlreadyPublished.selector, ID));
        _publish(rival, ID, "copycat", "1.0.0", 0);

        (address a, uint96 fee) = templates.authorOf(ID);
        assertEq(a, author);
        assertEq(fee, FEE);
    }

    function test_publish_revertsWhenNameEmpty() public {
        vm.expectRevert(ITemplateRegistry.EmptyName.selector);
        _publish(author, ID, "", "1.0.0", FEE);
    }

    function test_publish_newVersionByNameOwner() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        vm.expectEmit(true, true, true, true, address(templates));
        emit ITemplateRegistry.TemplatePublished(ID_V2, author, NAME, "2.0.0", URI, 2 * FEE);
        _publish(author, ID_V2, NAME, "2.0.0", 2 * FEE);

        // Each version keeps its own terms: a fee change is a new version, the old one is untouched.
        (, uint96 fee1) = templates.authorOf(ID);
        (, uint96 fee2) = templates.authorOf(ID_V2);
        assertEq(fee1, FEE);
        assertEq(fee2, 2 * FEE);
        assertEq(templates.templateOf(ID_V2).version, "2.0.0");
    }

    function test_publish_revertsWhenNameOwnedByAnother() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        vm.expectRevert(abi.encodeWithSelector(ITemplateRegistry.NotNameOwner.selector, NAME, author));
        _publish(rival, ID_V2, NAME, "9.9.9", 0);
        assertEq(templates.templateOf(ID_V2).author, address(0));
        assertEq(templates.nameOwner(NAME), author);
    }

    function test_publish_namesAreCaseSensitive() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        _publish(rival, ID_V2, "Median-Price", "1.0.0", FEE);
        assertEq(templates.nameOwner("Median-Price"), rival);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         DEPRECATE                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_deprecate_byAuthor() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        vm.expectEmit(true, true, true, true, address(templates));
        emit ITemplateRegistry.TemplateDeprecated(ID);
        vm.prank(author);
        templates.deprecate(ID);

        (address a, uint96 fee, bool deprecated) = templates.termsOf(ID);
        assertTrue(deprecated);
        assertTrue(templates.templateOf(ID).deprecated);
        // Author and fee survive: pending requests still pay the author.
        assertEq(a, author);
        assertEq(fee, FEE);
    }

    function test_deprecate_revertsWhenNotAuthor() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        vm.expectRevert(abi.encodeWithSelector(ITemplateRegistry.NotAuthor.selector, ID, rival));
        vm.prank(rival);
        templates.deprecate(ID);
        (,, bool deprecated) = templates.termsOf(ID);
        assertFalse(deprecated);
    }

    function test_deprecate_revertsWhenUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(ITemplateRegistry.UnknownTemplate.selector, ID));
        vm.prank(author);
        templates.deprecate(ID);
    }

    function test_deprecate_revertsWhenAlreadyDeprecated() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        vm.startPrank(author);
        templates.deprecate(ID);
        vm.expectRevert(abi.encodeWithSelector(ITemplateRegistry.TemplateAlreadyDeprecated.selector, ID));
        templates.deprecate(ID);
        vm.stopPrank();
    }

    function test_deprecate_leavesOtherVersionsAndNameOwnership() public {
        _publish(author, ID, NAME, "1.0.0", FEE);
        _publish(author, ID_V2, NAME, "2.0.0", FEE);
        vm.prank(author);
        templates.deprecate(ID);
        (,, bool deprecatedV2) = templates.termsOf(ID_V2);
        assertFalse(deprecatedV2);
        // The name stays with its author: deprecation does not free it for someone else.
        vm.expectRevert(abi.encodeWithSelector(ITemplateRegistry.NotNameOwner.selector, NAME, author));
        _publish(rival, keccak256("bundle v3"), NAME, "3.0.0", 0);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_views_unknownTemplateIsZero() public view {
        (address a, uint96 fee) = templates.authorOf(ID);
        assertEq(a, address(0));
        assertEq(fee, 0);
        (a, fee,) = templates.termsOf(ID);
        assertEq(a, address(0));
        ITemplateRegistry.Template memory t = templates.templateOf(ID);
        assertEq(t.author, address(0));
        assertEq(bytes(t.name).length, 0);
        assertEq(templates.nameOwner(NAME), address(0));
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           FUZZ                             */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function testFuzz_publish_roundTrip(
        address who,
        bytes32 id,
        string calldata name,
        string calldata version,
        string calldata uri,
        uint96 fee
    ) public {
        vm.assume(who != address(0) && bytes(name).length > 0);
        vm.prank(who);
        templates.publish(id, name, version, uri, fee);

        ITemplateRegistry.Template memory t = templates.templateOf(id);
        assertEq(t.author, who);
        assertEq(t.authorFee, fee);
        assertEq(t.name, name);
        assertEq(t.version, version);
        assertEq(t.uri, uri);
        assertFalse(t.deprecated);
        (address a, uint96 f) = templates.authorOf(id);
        assertEq(a, who);
        assertEq(f, fee);
    }

    /// @dev Whatever anyone does afterwards, a published id keeps its author and fee.
    function testFuzz_publish_termsNeverChange(address other, bytes32 otherId, uint96 otherFee, bool deprecate) public {
        vm.assume(other != address(0) && other != author);
        _publish(author, ID, NAME, "1.0.0", FEE);
        if (deprecate) {
            vm.prank(author);
            templates.deprecate(ID);
        }

        vm.startPrank(other);
        try templates.publish(ID, "other", "1", "", otherFee) {
            revert("republished");
        } catch {}
        try templates.publish(otherId, NAME, "1", "", otherFee) {
            revert("took the name");
        } catch {}
        try templates.deprecate(ID) {
            revert("stranger deprecated");
        } catch {}
        vm.stopPrank();

        (address a, uint96 fee) = templates.authorOf(ID);
        assertEq(a, author);
        assertEq(fee, FEE);
        assertEq(templates.nameOwner(NAME), author);
    }
}
