"""The one root exception and the enclave's built-in-compatible subclasses (the node adds its own in `coprocessor.errors`)."""


class CoprocessorError(Exception):
    """Base of every error this project raises on purpose."""


class ManifestError(CoprocessorError, ValueError):
    """A template folder or its `template.toml` is invalid."""


class EnclaveError(CoprocessorError, RuntimeError):
    """The enclave refused a job, or could not be reached."""


class EnclaveUnreachable(EnclaveError):
    """The enclave did not answer at all (as opposed to refusing a job); worth retrying."""


class AttestationError(CoprocessorError, ValueError):
    """Evidence did not verify, or does not bind what it must."""


class CapabilityError(CoprocessorError):
    """A template's capability call (HTTP, secret, chain read) was refused; the template sees the reason."""


class ChainDataError(CoprocessorError, ValueError):
    """The host supplied chain data that fails verification against the request's anchor block hash."""
