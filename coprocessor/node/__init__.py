"""The node: the stages one request passes through, in order.

`heads` (new blocks) -> `listener` (requests in them, reorgs) -> `journal` (every request by
commitment, its state) -> `enclave_client` (runs in the enclave) -> `submitter` (fulfil batches,
nonces, receipts); `pipeline` runs them as threads (`Node`); `metrics`, `quotes` (the public sync
endpoint) and `catalog` (the on-chain TemplateRegistry) beside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import NodeConfig

if TYPE_CHECKING:
    from .pipeline import Node

__all__ = ["Node", "NodeConfig"]


def __getattr__(name: str) -> Any:
    # Lazily: importing `coprocessor.node.journal` (say, for `coprocessor status`) does not start the pipeline's imports.
    if name == "Node":
        from .pipeline import Node

        return Node
    raise AttributeError(f"module 'coprocessor.node' has no attribute {name!r}")
