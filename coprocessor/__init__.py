"""An EVM coprocessor: Solidity requests answered by enclave-signed, on-chain-verified Python templates.

Names are re-exported lazily, so a template worker that imports `coprocessor.sdk`
does not pay for web3 at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AttestationError": "coprocessor.errors",
    "ChainError": "coprocessor.errors",
    "CoprocessorError": "coprocessor.errors",
    "EnclaveError": "coprocessor.errors",
    "ManifestError": "coprocessor.errors",
    "ToolchainError": "coprocessor.errors",
    "Context": "coprocessor_enclave.sdk",
    "InvalidInput": "coprocessor_enclave.sdk",
    "Deployment": "coprocessor.chain",
    "TxSender": "coprocessor.chain",
    "connect": "coprocessor.chain",
    "Journal": "coprocessor.journal",
    "State": "coprocessor.journal",
    "Node": "coprocessor.node",
    "NodeConfig": "coprocessor.config",
    "Fulfillment": "coprocessor_enclave.protocol",
    "Request": "coprocessor_enclave.protocol",
    "Status": "coprocessor_enclave.protocol",
    "TeeType": "coprocessor_enclave.protocol",
    "Template": "coprocessor_enclave.template",
    "load_template": "coprocessor_enclave.template",
    "load_templates": "coprocessor_enclave.template",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .chain import Deployment, TxSender, connect
    from .errors import AttestationError, ChainError, CoprocessorError, EnclaveError, ManifestError, ToolchainError
    from .journal import Journal, State
    from .config import NodeConfig
    from .node import Node
    from coprocessor_enclave.protocol import Fulfillment, Request, Status, TeeType
    from coprocessor_enclave.sdk import Context, InvalidInput
    from coprocessor_enclave.template import Template, load_template, load_templates


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'coprocessor' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
