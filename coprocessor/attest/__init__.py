"""Attestation outside the enclave: `attestor` verifies an enclave's evidence (dcap-qvl and a policy) and
approves it; `registration` runs the flow (attest, verify, approve, register) and keeps the key alive."""
