// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CoprocessorClient} from "../CoprocessorClient.sol";
import {ICoprocessor} from "../interfaces/ICoprocessor.sol";

/// @notice A plain consumer: anyone asks for a template, the response is stored for them to read.
contract ExampleConsumer is CoprocessorClient {
    struct Response {
        bool received;
        uint8 status;
        bytes output;
    }

    /// @notice Thrown when anyone but the deployer withdraws refunds.
    error NotOwner(address caller);

    /// @notice Emitted when a question is sent to the Coprocessor.
    event Asked(bytes32 indexed requestId, address indexed asker, bytes32 indexed templateId);
    /// @notice Emitted when the answer arrives.
    event Answered(bytes32 indexed requestId, uint8 status, bytes output);

    /// @notice Callback gas given to every request: storing costs ~22k gas per 32 bytes, so this
    ///         stores outputs and error reasons up to about 600 bytes (a Merkle root with its proof).
    uint32 public constant CALLBACK_GAS = 500_000;

    /// @notice The deployer, who may withdraw refunds of cancelled requests.
    address public immutable owner = msg.sender;

    /// @notice Answers by request id.
    mapping(bytes32 requestId => Response) public responses;

    /// @notice How many callbacks arrived, to show each request is answered once.
    uint256 public callbackCount;

    constructor(ICoprocessor coprocessor_) CoprocessorClient(coprocessor_) {}

    /// @notice Runs `templateId` on `input`; the fee is `msg.value`.
    function ask(bytes32 templateId, bytes calldata input, uint64 timeout) external payable returns (bytes32 requestId) {
        requestId = _request(templateId, input, CALLBACK_GAS, timeout, msg.value);
        emit Asked(requestId, msg.sender, templateId);
    }

    /// @notice Sends refunds of cancelled requests to `to`. Only the deployer.
    function withdrawRefunds(address payable to) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _withdrawRefunds(to);
    }

    /// @notice The stored response of `requestId`.
    function response(bytes32 requestId) external view returns (Response memory) {
        return responses[requestId];
    }

    function _onResponse(bytes32 requestId, uint8 status, bytes calldata output) internal override {
        ++callbackCount;
        responses[requestId] = Response({received: true, status: status, output: output});
        emit Answered(requestId, status, output);
    }
}
