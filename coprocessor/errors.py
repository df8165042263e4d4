"""The one root exception and its built-in-compatible subclasses: the enclave's, and the node's own."""

from coprocessor_enclave.errors import (
    AttestationError,
    CapabilityError,
    ChainDataError,
    CoprocessorError,
    EnclaveError,
    EnclaveUnreachable,
    ManifestError,
)

__all__ = [
    "AttestationError",
    "CapabilityError",
    "ChainDataError",
    "ChainError",
    "CoprocessorError",
    "EnclaveError",
    "EnclaveUnreachable",
    "ManifestError",
    "ToolchainError",
]


class ToolchainError(CoprocessorError, RuntimeError):
    """A pinned tool (anvil, forge, solc) or a build artifact is missing or failed."""


class ChainError(CoprocessorError, RuntimeError):
    """A transaction reverted, or the chain answered something unexpected."""
