"""The attested execution boundary: key holder, template workers, attestation backends.

Submodules are imported directly (`coprocessor_enclave.enclave`, ...), so a template
worker (`coprocessor_enclave.forkserver`) loads nothing it does not need.
"""
