// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Vm} from "forge-std/Vm.sol";

import {Coprocessor} from "../../src/Coprocessor.sol";
import {TemplateRegistry} from "../../src/TemplateRegistry.sol";
import {ICoprocessor} from "../../src/interfaces/ICoprocessor.sol";
import {Request, Fulfillment, RequestLib} from "../../src/libraries/RequestLib.sol";

import {ExampleConsumer} from "../../src/examples/ExampleConsumer.sol";

/// @notice Drives the Coprocessor like a crowd of consumers, racing nodes, keepers and a template author,
/// and keeps ghost accounts of every wei that goes in and out, built from the events the contract emits
/// and the templates' (immutable) author fees.
/// @dev Note: every action is written not to revert, so the invariant run can fail on any revert.
contract CoprocessorHandler is CommonBase, StdCheats, StdUtils {
    bytes32 internal constant TEMPLATE_ID = keccak256("template-bundle");
    bytes32 internal constant PAID_TEMPLATE_ID = keccak256("invariant-paid-bundle");
    uint96 internal constant AUTHOR_FEE = 0.003 ether;
    bytes32 internal constant REQUEST_FULFILLED_SIG = keccak256("RequestFulfilled(bytes32,address,uint8,bool)");
    bytes32 internal constant REQUEST_CANCELLED_SIG = keccak256("RequestCancelled(bytes32,address,uint96)");
    bytes32 internal constant WITHDRAWN_SIG = keccak256("Withdrawn(address,address,uint256)");

    Coprocessor public immutable coprocessor;
    ExampleConsumer public immutable consumer;
    TemplateRegistry public immutable templates;
    address public immutable refundSink;
    /// @notice Author of `PAID_TEMPLATE_ID`, which charges `AUTHOR_FEE`; `TEMPLATE_ID` is free.
    address public immutable author;

    uint256[] internal _enclaveKeys;
    /// @notice `payees[i]` is the registered payee of the enclave with key `_enclaveKeys[i]`.
    address[] public payees;
    mapping(address enclave => address) internal _payeeOf;

    Request[] internal _requests;
    mapping(bytes32 requestId => uint256) internal _indexPlusOne;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           GHOSTS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice `RequestFulfilled` events seen per request.
    mapping(bytes32 requestId => uint256) public fulfilledEvents;
    /// @notice `RequestCancelled` events seen per request.
    mapping(bytes32 requestId => uint256) public cancelledEvents;
    /// @notice Requests with at least one `RequestFulfilled` event.
    uint256 public distinctFulfilled;

    uint256 public ghostFeesIn;
    uint256 public ghostFeesPaid;
    uint256 public ghostRefunds;
    mapping(address account => uint256) public ghostCredited;
    mapping(address account => uint256) public ghostWithdrawn;

    /// @notice Action counters, to show the run did real work.
    uint256 public fulfilCalls;
    uint256 public skippedItems;
    uint256 public cancelCalls;
    uint256 public withdrawCalls;
    uint256 public paidRequests;
    bool public paidDeprecated;

    constructor(
        Coprocessor coprocessor_,
        ExampleConsumer consumer_,
        uint256[] memory enclaveKeys,
        address[] memory payees_
    ) {
        coprocessor = coprocessor_;
        consumer = consumer_;
        templates = TemplateRegistry(address(coprocessor_.templateRegistry()));
        refundSink = makeAddr("refund-sink");
        author = makeAddr("invariant-author");
        vm.prank(author);
        templates.publish(PAID_TEMPLATE_ID, "invariant-paid", "1.0.0", "", AUTHOR_FEE);
        for (uint256 i; i < enclaveKeys.length; ++i) {
            _enclaveKeys.push(enclaveKeys[i]);
            payees.push(payees_[i]);
            _payeeOf[vm.addr(enclaveKeys[i])] = payees_[i];
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          ACTIONS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice A consumer asks for the free or the paid template, with a random fee, timeout and input.
    function request(uint256 fee, uint256 timeout, uint256 inputSeed) external {
        bool paid = inputSeed % 2 == 1 && !paidDeprecated;
        bytes32 templateId = paid ? PAID_TEMPLATE_ID : TEMPLATE_ID;
        fee = bound(fee, paid ? AUTHOR_FEE : 0, 1 ether);
        timeout = bound(timeout, 1, 2 days);
        bytes memory input = abi.encode(inputSeed);
        vm.deal(address(this), address(this).balance + fee);

        // Rebuilt from known fields, as a listener would from the event.
        Request memory r = Request({
            requestId: keccak256(abi.encode(block.chainid, address(coprocessor), coprocessor.nonce())),
            consumer: address(consumer),
            templateId: templateId,
            inputHash: keccak256(input),
            callbackGasLimit: consumer.CALLBACK_GAS(),
            fee: uint96(fee),
            deadline: uint64(block.timestamp + timeout),
            anchorBlock: uint64(block.number - 1),
            anchorHash: blockhash(block.number - 1)
        });
        bytes32 id = consumer.ask{value: fee}(templateId, input, uint64(timeout));
        require(id == r.requestId, "unexpected request id");
        if (paid) ++paidRequests;

        _requests.push(r);
        _indexPlusOne[id] = _requests.length;
        ghostFeesIn += fee;
    }

    /// @notice A node submits a batch of valid responses, possibly stale, expired or duplicated.
    function fulfill(uint256 seed, uint256 count, bool duplicate, uint256 status) external {
        if (_requests.length == 0) return;
        count = bound(count, 1, 4);
        Fulfillment[] memory fs = new Fulfillment[](duplicate ? count + 1 : count);
        for (uint256 i; i < count; ++i) {
            uint256 pick = uint256(keccak256(abi.encode(seed, i)));
            fs[i] = _signed(_requests[pick % _requests.length], uint8(bound(status, 0, RequestLib.MAX_STATUS)), pick);
        }
        if (duplicate) fs[count] = fs[0];

        vm.recordLogs();
        coprocessor.fulfill(fs);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 settled;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(coprocessor) || logs[i].topics[0] != REQUEST_FULFILLED_SIG) continue;
            bytes32 id = logs[i].topics[1];
            address signer = address(uint160(uint256(logs[i].topics[2])));
            (uint8 settledStatus,) = abi.decode(logs[i].data, (uint8, bool));
            Request memory r = _requestOf(id);
            uint256 authorFee = r.templateId == PAID_TEMPLATE_ID ? AUTHOR_FEE : 0;
            if (fulfilledEvents[id]++ == 0) ++distinctFulfilled;
            ghostFeesPaid += r.fee;
            ghostCredited[_payeeOf[signer]] += r.fee - authorFee;
            ghostCredited[settledStatus == 0 ? author : r.consumer] += authorFee;
            ++settled;
        }
        ++fulfilCalls;
        skippedItems += fs.length - settled;
    }

    /// @notice A forger submits a response signed by an unregistered key; it must revert and change nothing.
    function fulfillForged(uint256 seed, uint256 forgerKey) external {
        if (_requests.length == 0) return;
        forgerKey = bound(forgerKey, 1, SECP256K1_ORDER - 1);
        Request memory r = _requests[seed % _requests.length];
        if (_payeeOf[vm.addr(forgerKey)] != address(0)) return;
        if (coprocessor.requestState(r.requestId) != ICoprocessor.RequestState.Pending) return;
        if (block.timestamp > r.deadline) return;

        Fulfillment[] memory fs = new Fulfillment[](1);
        fs[0] = _signedBy(r, 0, forgerKey);
        try coprocessor.fulfill(fs) {
            revert("forged response accepted");
        } catch (bytes memory err) {
            require(bytes4(err) == ICoprocessor.EnclaveNotActive.selector, "unexpected error");
        }
    }

    /// @notice A keeper cancels a request, after waiting for its deadline if needed.
    function cancel(uint256 seed) external {
        if (_requests.length == 0) return;
        Request memory r = _requests[seed % _requests.length];
        if (coprocessor.requestState(r.requestId) != ICoprocessor.RequestState.Pending) {
            try coprocessor.cancel(r) {
                revert("closed request cancelled");
            } catch (bytes memory err) {
                require(bytes4(err) == ICoprocessor.NotPending.selector, "unexpected error");
            }
            return;
        }
        if (block.timestamp <= r.deadline) _warp(r.deadline + 1 - block.timestamp);

        vm.recordLogs();
        coprocessor.cancel(r);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(coprocessor) || logs[i].topics[0] != REQUEST_CANCELLED_SIG) continue;
            bytes32 id = logs[i].topics[1];
            uint256 refund = _requestOf(id).fee;
            ++cancelledEvents[id];
            ghostRefunds += refund;
            ghostCredited[address(uint160(uint256(logs[i].topics[2])))] += refund;
        }
        ++cancelCalls;
    }

    /// @notice The author deprecates the paid template; its pending requests must still settle and pay.
    function deprecate() external {
        if (paidDeprecated) return;
        vm.prank(author);
        templates.deprecate(PAID_TEMPLATE_ID);
        paidDeprecated = true;
    }

    /// @notice Time passes.
    function warp(uint256 secs) external {
        _warp(bound(secs, 1, 1 days));
    }

    /// @notice A payee, the author or the consumer withdraws what it was credited.
    function withdraw(uint256 who) external {
        who = bound(who, 0, payees.length + 1);
        address account;
        address to;
        vm.recordLogs();
        if (who == payees.length) {
            (account, to) = (address(consumer), refundSink);
            vm.prank(consumer.owner());
            consumer.withdrawRefunds(payable(to));
        } else if (who == payees.length + 1) {
            (account, to) = (author, author);
            vm.prank(author);
            coprocessor.withdraw(payable(to));
        } else {
            (account, to) = (payees[who], payees[who]);
            vm.prank(account);
            coprocessor.withdraw(payable(to));
        }
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(coprocessor) || logs[i].topics[0] != WITHDRAWN_SIG) continue;
            require(address(uint160(uint256(logs[i].topics[1]))) == account, "wrong account");
            ghostWithdrawn[account] += abi.decode(logs[i].data, (uint256));
        }
        require(coprocessor.balanceOf(account) == 0, "balance left after withdraw");
        ++withdrawCalls;
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           VIEWS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function requestCount() external view returns (uint256) {
        return _requests.length;
    }

    function requestAt(uint256 i) external view returns (Request memory) {
        return _requests[i];
    }

    function payeeCount() external view returns (uint256) {
        return payees.length;
    }

    /// @notice The sum of fees of requests the Coprocessor still reports as pending.
    function pendingFees() external view returns (uint256 sum) {
        for (uint256 i; i < _requests.length; ++i) {
            if (coprocessor.requestState(_requests[i].requestId) == ICoprocessor.RequestState.Pending) {
                sum += _requests[i].fee;
            }
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          PRIVATE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function _warp(uint256 secs) private {
        vm.warp(block.timestamp + secs);
        vm.roll(block.number + 1 + secs / 12);
    }

    /// @dev Signs with one of the registered enclaves, chosen by `pick`.
    function _signed(Request memory r, uint8 status, uint256 pick) private view returns (Fulfillment memory) {
        return _signedBy(r, status, _enclaveKeys[(pick >> 128) % _enclaveKeys.length]);
    }

    function _signedBy(Request memory r, uint8 status, uint256 key) private view returns (Fulfillment memory f) {
        bytes memory output = abi.encode(r.requestId, status);
        bytes32 digest = coprocessor.responseDigest(r.requestId, keccak256(abi.encode(r)), status, output);
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, digest);
        f = Fulfillment({request: r, status: status, output: output, signature: abi.encodePacked(rr, s, v)});
    }

    function _requestOf(bytes32 id) private view returns (Request memory) {
        uint256 i = _indexPlusOne[id];
        require(i != 0, "event for unknown request");
        return _requests[i - 1];
    }
}
