// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Catalogue of task templates: who wrote each bundle and what its author earns per answered request.
/// @dev Note: a template's author and author fee never change once published. The Coprocessor reads the
/// fee when a request is fulfilled, not when it is made; a mutable fee could be raised between the two
/// (front-running the fulfilment) to take the enclave payee's share of a fee the consumer already paid.
/// A new fee is a new version: a new bundle, so a new `templateId`.
interface ITemplateRegistry {
    /// @notice One published template. A zero `author` means the id was never published.
    struct Template {
        address author;
        uint96 authorFee;
        bool deprecated;
        string name;
        string version;
        string uri;
    }

    /// @notice Thrown when publishing with an empty name.
    error EmptyName();
    /// @notice Thrown when a template id is published a second time.
    error TemplateAlreadyPublished(bytes32 templateId);
    /// @notice Thrown when publishing a version under a name another author published first.
    error NotNameOwner(string name, address nameOwner);
    /// @notice Thrown when deprecating a template id that was never published.
    error UnknownTemplate(bytes32 templateId);
    /// @notice Thrown when anyone but the author deprecates a template.
    error NotAuthor(bytes32 templateId, address caller);
    /// @notice Thrown when deprecating a template twice.
    error TemplateAlreadyDeprecated(bytes32 templateId);

    /// @notice Emitted once per template id, with everything a catalogue lists.
    /// @param templateId The keccak256 content hash of the template bundle
    /// @param author The account that published the template and earns its author fee
    /// @param name The template's name
    /// @param version The template's free-form version label
    /// @param uri Where the bundle can be fetched (may be empty)
    /// @param authorFee The fee the author earns per Ok fulfilment, in wei
    event TemplatePublished(
        bytes32 indexed templateId, address indexed author, string name, string version, string uri, uint96 authorFee
    );
    /// @notice Emitted when the author retires a template; it can no longer be requested.
    /// @param templateId The content hash of the retired template bundle
    event TemplateDeprecated(bytes32 indexed templateId);

    /// @notice Publishes a template bundle; the caller becomes its author, for good.
    /// @dev The first author to publish under `name` owns it; only they may publish further versions under it.
    /// @param templateId keccak256 content hash of the bundle, computed off-chain.
    /// @param name Template name; not empty.
    /// @param version Free-form version label.
    /// @param uri Where the bundle can be fetched (may be empty).
    /// @param authorFee Wei the author earns per Ok fulfilment, on top of the Coprocessor's minimum fee. Immutable.
    function publish(
        bytes32 templateId,
        string calldata name,
        string calldata version,
        string calldata uri,
        uint96 authorFee
    ) external;

    /// @notice Retires a template: new requests for it are refused, pending ones still settle and pay the author.
    /// @dev Only the author. Final.
    /// @param templateId The content hash of the template bundle to retire
    function deprecate(bytes32 templateId) external;

    /// @notice Everything stored about `templateId` (a zero author if never published).
    /// @param templateId The content hash of the template bundle
    /// @return The template's author, author fee, deprecation flag, name, version and URI
    function templateOf(bytes32 templateId) external view returns (Template memory);

    /// @notice Author and author fee of `templateId`, from one storage slot (zero author if never published).
    /// @param templateId The content hash of the template bundle
    /// @return author The account that published the template, or the zero address if it was never published
    /// @return authorFee The fee the author earns per Ok fulfilment, in wei
    function authorOf(bytes32 templateId) external view returns (address author, uint96 authorFee);

    /// @notice What the Coprocessor checks before taking a request: author, author fee and whether it is deprecated.
    /// @param templateId The content hash of the template bundle
    /// @return author The account that published the template, or the zero address if it was never published
    /// @return authorFee The fee the author earns per Ok fulfilment, in wei
    /// @return deprecated Whether the author retired the template, so new requests for it are refused
    function termsOf(bytes32 templateId) external view returns (address author, uint96 authorFee, bool deprecated);

    /// @notice The author who owns `name`, or the zero address if nobody published under it.
    /// @param name The template name
    /// @return The author who first published under `name`, or the zero address
    function nameOwner(string calldata name) external view returns (address);
}
