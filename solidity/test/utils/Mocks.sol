// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EnclaveRegistry} from "../../src/EnclaveRegistry.sol";
import {ICoprocessor} from "../../src/interfaces/ICoprocessor.sol";
import {ICoprocessorConsumer} from "../../src/interfaces/ICoprocessorConsumer.sol";
import {Fulfillment} from "../../src/libraries/RequestLib.sol";

/// @notice A consumer whose callback misbehaves on demand, and which records what it saw.
/// @dev Implements the interface directly (not `CoprocessorClient`) so `gasleft()` is read before anything else runs.
contract MockConsumer is ICoprocessorConsumer {
    /// @notice What the callback does.
    enum Mode {
        Store,
        Revert,
        BurnGas,
        ReturnBomb,
        Reenter
    }

    ICoprocessor public immutable coprocessor;

    Mode public mode;
    /// @notice `gasleft()` at the first statement of the last callback.
    uint256 public gasAtEntry;
    uint256 public callbackCount;
    bytes32 public lastRequestId;
    uint8 public lastStatus;
    bytes32 public lastOutputHash;
    /// @notice Whether the re-entrant `fulfill` made from the callback returned normally.
    bool public reentrySucceeded;
    /// @notice Bytes returned by the callback in `ReturnBomb` mode.
    uint256 public returnBombSize;

    bytes internal _reentryCall;

    constructor(ICoprocessor coprocessor_) {
        coprocessor = coprocessor_;
    }

    /// @notice Sends a request as this consumer.
    function request(bytes32 templateId, bytes calldata input, uint32 callbackGasLimit, uint64 timeout)
        external
        payable
        returns (bytes32)
    {
        return coprocessor.request{value: msg.value}(templateId, input, callbackGasLimit, timeout);
    }

    /// @notice Withdraws this consumer's refunds.
    function withdraw(address payable to) external {
        coprocessor.withdraw(to);
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    function setReturnBombSize(uint256 size) external {
        returnBombSize = size;
    }

    /// @notice Arms `Reenter` mode with a batch to re-submit from inside the callback.
    function setReentry(Fulfillment[] calldata fulfillments) external {
        _reentryCall = abi.encodeCall(ICoprocessor.fulfill, (fulfillments));
    }

    /// @inheritdoc ICoprocessorConsumer
    function onCoprocessorResponse(bytes32 requestId, uint8 status, bytes calldata output) external {
        uint256 g = gasleft();
        require(msg.sender == address(coprocessor), "only coprocessor");
        Mode m = mode;
        if (m == Mode.Revert) revert("consumer says no");
        if (m == Mode.BurnGas) {
            // Spin until out of gas: a hostile consumer trying to starve the rest of the batch.
            uint256 x;
            while (true) {
                x = uint256(keccak256(abi.encode(x)));
            }
        }
        gasAtEntry = g;
        ++callbackCount;
        lastRequestId = requestId;
        lastStatus = status;
        lastOutputHash = keccak256(output);
        if (m == Mode.Reenter) {
            (reentrySucceeded,) = address(coprocessor).call(_reentryCall);
        } else if (m == Mode.ReturnBomb) {
            uint256 size = returnBombSize;
            assembly ("memory-safe") {
                return(0, size)
            }
        }
    }
}

/// @notice Refuses ether, to make withdrawals fail.
contract EtherRejecter {
    receive() external payable {
        revert("no ether");
    }
}

/// @notice A consumer that looks at its own credit in the Coprocessor from inside its callback and, when armed,
/// revokes an enclave there (it must own the registry for that).
contract WatchingConsumer is ICoprocessorConsumer {
    ICoprocessor public immutable coprocessor;
    EnclaveRegistry public immutable registry;

    /// @notice `coprocessor.balanceOf(this)` seen by the last callback.
    uint256 public creditSeen;
    uint256 public callbackCount;
    /// @notice Enclave revoked by the next callback, if set.
    address public revokeTarget;

    constructor(ICoprocessor coprocessor_, EnclaveRegistry registry_) {
        coprocessor = coprocessor_;
        registry = registry_;
    }

    function request(bytes32 templateId, bytes calldata input, uint32 callbackGasLimit, uint64 timeout)
        external
        payable
        returns (bytes32)
    {
        return coprocessor.request{value: msg.value}(templateId, input, callbackGasLimit, timeout);
    }

    function setRevokeTarget(address enclave) external {
        revokeTarget = enclave;
    }

    /// @inheritdoc ICoprocessorConsumer
    function onCoprocessorResponse(bytes32, uint8, bytes calldata) external {
        require(msg.sender == address(coprocessor), "only coprocessor");
        ++callbackCount;
        creditSeen = coprocessor.balanceOf(address(this));
        address target = revokeTarget;
        if (target != address(0)) {
            revokeTarget = address(0);
            registry.revokeEnclave(target);
        }
    }
}
