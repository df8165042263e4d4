// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITemplateRegistry} from "./interfaces/ITemplateRegistry.sol";

/// @notice Permissionless catalogue of template bundles, their authors and author fees.
/// @dev Note: there is no owner and no way to change an author or a fee after publishing. The
/// Coprocessor reads the author fee at fulfilment; were it mutable, an author could raise it after a
/// request was paid and before it is fulfilled, taking the enclave payee's share. Deprecation is the
/// only change, and it affects new requests only.
contract TemplateRegistry is ITemplateRegistry {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Published templates. `author` and `authorFee` share the first slot, the one `authorOf` reads.
    mapping(bytes32 templateId => Template) private _templates;

    /// @dev keccak256(name) => the author who first published under that name.
    mapping(bytes32 nameHash => address author) private _nameOwners;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         PUBLISHING                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ITemplateRegistry
    function publish(
        bytes32 templateId,
        string calldata name,
        string calldata version,
        string calldata uri,
        uint96 authorFee
    ) external {
        if (bytes(name).length == 0) revert EmptyName();
        Template storage t = _templates[templateId];
        if (t.author != address(0)) revert TemplateAlreadyPublished(templateId);
        bytes32 nameHash = keccak256(bytes(name));
        address owner = _nameOwners[nameHash];
        if (owner == address(0)) {
            _nameOwners[nameHash] = msg.sender;
        } else if (owner != msg.sender) {
            revert NotNameOwner(name, owner);
        }

        t.author = msg.sender;
        t.authorFee = authorFee;
        t.name = name;
        t.version = version;
        t.uri = uri;
        emit TemplatePublished(templateId, msg.sender, name, version, uri, authorFee);
    }

    /// @inheritdoc ITemplateRegistry
    function deprecate(bytes32 templateId) external {
        Template storage t = _templates[templateId];
        address author = t.author;
        if (author == address(0)) revert UnknownTemplate(templateId);
        if (author != msg.sender) revert NotAuthor(templateId, msg.sender);
        if (t.deprecated) revert TemplateAlreadyDeprecated(templateId);
        t.deprecated = true;
        emit TemplateDeprecated(templateId);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @inheritdoc ITemplateRegistry
    function templateOf(bytes32 templateId) external view returns (Template memory) {
        return _templates[templateId];
    }

    /// @inheritdoc ITemplateRegistry
    function authorOf(bytes32 templateId) external view returns (address author, uint96 authorFee) {
        Template storage t = _templates[templateId];
        return (t.author, t.authorFee);
    }

    /// @inheritdoc ITemplateRegistry
    function termsOf(bytes32 templateId) external view returns (address author, uint96 authorFee, bool deprecated) {
        Template storage t = _templates[templateId];
        return (t.author, t.authorFee, t.deprecated);
    }

    /// @inheritdoc ITemplateRegistry
    function nameOwner(string calldata name) external view returns (address) {
        return _nameOwners[keccak256(bytes(name))];
    }
}
