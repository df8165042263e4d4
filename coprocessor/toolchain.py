"""Where the pinned tools and build outputs live, and how to run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOLIDITY_DIR = PROJECT_ROOT / "solidity"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
NODE_MODULES = PROJECT_ROOT / "node_modules"

_SETUP_HINT = "run `make setup` in the project root (it installs the pinned npm packages)"


def tool_path(name: str) -> Path:
    """The pinned Foundry binary `name` (anvil, forge, cast); `COPROCESSOR_<NAME>` overrides it."""
    override = os.environ.get(f"COPROCESSOR_{name.upper()}")
    path = Path(override) if override else NODE_MODULES / "@foundry-rs" / f"{name}-linux-amd64" / "bin" / name
    if not path.is_file():
        raise ToolchainError(f"{name} not found at {path}: {_SETUP_HINT}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)  # npm does not always keep the executable bit
    return path


def forge_build() -> None:
    """Compiles the contracts with the pinned forge and solcjs; fast when nothing changed."""
    if shutil.which("node") is None:
        raise ToolchainError("node is not on PATH: the Solidity compiler (solcjs) needs Node.js")
    result = subprocess.run(
        [str(tool_path("forge")), "build"], cwd=SOLIDITY_DIR, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ToolchainError(f"forge build failed:\n{result.stdout}\n{result.stderr}")
    artifact.cache_clear()


@cache
def artifact(contract: str) -> dict[str, Any]:
    """The forge artifact (abi, bytecode) of `contract`, e.g. "Coprocessor"."""
    matches = sorted((SOLIDITY_DIR / "out").glob(f"*.sol/{contract}.json"))
    if not matches:
        raise ToolchainError(f"no build artifact for {contract}: run `forge build` in solidity/ ({_SETUP_HINT})")
    return json.loads(matches[0].read_text())


def npm_errors(package: str) -> list[dict[str, Any]]:
    """Every custom error (ABI item) the compiled artifacts of an npm package declare; [] without the package."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((NODE_MODULES / package / "out").glob("*.sol/*.json")):
        try:
            abi = json.loads(path.read_text()).get("abi", [])
        except (OSError, ValueError):
            continue
        for item in abi:
            if isinstance(item, dict) and item.get("type") == "error":
                found.setdefault(json.dumps(item, sort_keys=True), item)
    return list(found.values())


def npm_artifact(package: str, contract: str) -> dict[str, Any]:
    """A compiled artifact shipped in an npm package, e.g. ("@uniswap/v4-core", "PoolManager"): deployed as is, never recompiled."""
    matches = sorted((NODE_MODULES / package / "out").glob(f"*.sol/{contract}.json"))
    if not matches:
        raise ToolchainError(f"no artifact for {contract} in {package}: {_SETUP_HINT}")
    return json.loads(matches[0].read_text())
