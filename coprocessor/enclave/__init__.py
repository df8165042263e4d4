"""The attested execution boundary: key holder, template workers, attestation backends.

Submodules are imported directly (`coprocessor.enclave.service`, ...), so a template
worker (`coprocessor.enclave.worker`) loads nothing it does not need.
"""
