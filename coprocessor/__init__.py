"""An EVM coprocessor: Solidity requests answered by enclave-signed, on-chain-verified Python templates.

Names are re-exported lazily, so a template worker that imports `coprocessor.sdk`
does not pay for web3 at start-up.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any, cast

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
    "Journal": "coprocessor.node.journal",
    "State": "coprocessor.node.journal",
    "Node": "coprocessor.node.pipeline",
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
    from coprocessor_enclave.protocol import Fulfillment, Request, Status, TeeType
    from coprocessor_enclave.sdk import Context, InvalidInput
    from coprocessor_enclave.template import Template, load_template, load_templates

    from .chain import Deployment, TxSender, connect
    from .config import NodeConfig
    from .errors import AttestationError, ChainError, CoprocessorError, EnclaveError, ManifestError, ToolchainError
    from .node.journal import Journal, State
    from .node.pipeline import Node


# Modules that lived at the package root before it was laid out by stage: `from coprocessor import devnet`
# and `import coprocessor.toolchain` (as published templates' tests do) still work, as the same module
# objects. New code imports them from their folder.
_MOVED = {
    "heads": "coprocessor.node.heads",
    "listener": "coprocessor.node.listener",
    "journal": "coprocessor.node.journal",
    "enclave_client": "coprocessor.node.enclave_client",
    "submitter": "coprocessor.node.submitter",
    "metrics": "coprocessor.node.metrics",
    "quotes": "coprocessor.node.quotes",
    "catalog": "coprocessor.node.catalog",
    "attestor": "coprocessor.attest.attestor",
    "registration": "coprocessor.attest.registration",
    "devnet": "coprocessor.dev.devnet",
    "v4": "coprocessor.dev.v4",
    "consumer": "coprocessor.dev.consumer",
    "toolchain": "coprocessor.dev.toolchain",
}


class _MovedModules:
    """Finds `coprocessor.<old name>` for a module that moved into a stage folder: the module itself."""

    def __init__(self) -> None:
        self._own_specs: dict[str, Any] = {}  # the module's own spec, which the import system overwrites

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        old = fullname.removeprefix("coprocessor.")
        return importlib.machinery.ModuleSpec(fullname, cast(Any, self)) if fullname != old and old in _MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        module = importlib.import_module(_MOVED[spec.name.removeprefix("coprocessor.")])
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: Any) -> None:
        module.__spec__ = self._own_specs[module.__spec__.name]


sys.meta_path.append(_MovedModules())  # last: only names no finder of the package's own files knows


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    if name not in _EXPORTS:
        raise AttributeError(f"module 'coprocessor' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
