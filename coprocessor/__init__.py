"""An EVM coprocessor: Solidity requests answered by enclave-signed, on-chain-verified Python templates.

Names are re-exported lazily, so a template worker that imports `coprocessor.sdk`
does not pay for web3 at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AttestationError": "errors",
    "ChainError": "errors",
    "CoprocessorError": "errors",
    "EnclaveError": "errors",
    "ManifestError": "errors",
    "ToolchainError": "errors",
    "Context": "sdk",
    "InvalidInput": "sdk",
    "Deployment": "chain",
    "TxSender": "chain",
    "connect": "chain",
    "Journal": "journal",
    "State": "journal",
    "Node": "node",
    "NodeConfig": "node",
    "Fulfillment": "protocol",
    "Request": "protocol",
    "Status": "protocol",
    "TeeType": "protocol",
    "Template": "template",
    "load_template": "template",
    "load_templates": "template",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .chain import Deployment, TxSender, connect
    from .errors import AttestationError, ChainError, CoprocessorError, EnclaveError, ManifestError, ToolchainError
    from .journal import Journal, State
    from .node import Node, NodeConfig
    from .protocol import Fulfillment, Request, Status, TeeType
    from .sdk import Context, InvalidInput
    from .template import Template, load_template, load_templates


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'coprocessor' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
