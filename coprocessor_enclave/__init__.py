"""The attested execution boundary: key holder, template workers, attestation backends.

Submodules are imported directly (`coprocessor_enclave.service`, ...), so a template
worker (`coprocessor_enclave.worker`) loads nothing it does not need.
"""
