// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Implemented by contracts that receive the results of jobs paid by a sponsor through `Sponsorships`.
interface ISponsoredConsumer {
    /// @notice Delivers the enclave-signed result of one sponsored job. Called only by the `Sponsorships` contract,
    /// with exactly the job's `callbackGas`.
    /// @dev Note: check `msg.sender`, and `sponsor` if only some sponsors' jobs are welcome: anyone holding a key of
    /// any sponsor may name this contract as a job's consumer unless that key is restricted to another one. A revert
    /// here is recorded (`JobSettled` with `consumerSucceeded` false); the job stays settled and is not retried.
    /// @param requestId The Coprocessor request that carried the job (`Sponsorships.submit` returned it)
    /// @param sponsor The account whose balance paid for the job
    /// @param status A `Status` value: 0 is Ok, anything else is an error
    /// @param output ABI-encoded template outputs when Ok, else a short UTF-8 reason
    function onSponsoredJob(bytes32 requestId, address sponsor, uint8 status, bytes calldata output) external;
}
