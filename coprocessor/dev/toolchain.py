"""Where the pinned tools and build outputs live, and how to run them.

In a checkout the build outputs are forge's (`solidity/out`), the npm packages' and `templates/`.
An installed wheel carries copies of what the commands need (`shipped/`, made by
`ship_build_outputs` when the wheel is built: `make wheel`), used when there is no checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # coprocessor/dev/toolchain.py -> the checkout
SOLIDITY_DIR = PROJECT_ROOT / "solidity"
NODE_MODULES = PROJECT_ROOT / "node_modules"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped"  # in a wheel: artifacts/, npm/, templates.zip


def _shipped_templates() -> Path:
    """The wheel's template library, unpacked once into the user's cache (by content): shipped as a zip,
    because pip compiles every .py file it installs, and a template folder with `__pycache__` is refused."""
    archive = SHIPPED_DIR / "templates.zip"
    if not archive.is_file():
        return SHIPPED_DIR / "templates"  # nowhere: commands that need the library say so
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coprocessor" / f"templates-{digest}"
    if not cache.is_dir():
        staging = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)  # our own archive; extractall also drops absolute and `..` parts
        try:
            staging.rename(cache)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
    return cache


# The template library: the checkout's, else the copy a wheel carries.
TEMPLATES_DIR = PROJECT_ROOT / "templates" if (PROJECT_ROOT / "templates").is_dir() else _shipped_templates()
# What a wheel ships from the npm packages: the v4 contracts `coprocessor dev` and `v4` deploy as built.
_SHIPPED_NPM = {"@uniswap/v4-core": ("PoolManager", "PoolSwapTest", "PoolModifyLiquidityTest", "TestERC20")}

FOUNDRY_VERSION = "1.7.1"  # package.json pins the same
_SETUP_HINT = "run `make setup` in the project root (it installs the pinned npm packages)"


def tool_path(name: str) -> Path:
    """The pinned Foundry binary `name` (anvil, forge, cast); `COPROCESSOR_<NAME>` overrides it.

    In a checkout it is the one `make setup` installed; installed from a wheel, the one on PATH."""
    override = os.environ.get(f"COPROCESSOR_{name.upper()}")
    if override:
        path = Path(override)
    elif in_checkout():
        path = NODE_MODULES / "@foundry-rs" / f"{name}-linux-amd64" / "bin" / name
    else:
        found = shutil.which(name)
        if found is None:
            raise ToolchainError(
                f"{name} is not on PATH: install Foundry's {name} ({FOUNDRY_VERSION} is the version tested:"
                f" `npm install @foundry-rs/{name}-linux-amd64@{FOUNDRY_VERSION}`, or foundryup),"
                f" or set COPROCESSOR_{name.upper()} to its path"
            )
        path = Path(found)
    if not path.is_file():
        raise ToolchainError(f"{name} not found at {path}: " + (_SETUP_HINT if not override else f"fix COPROCESSOR_{name.upper()}"))
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)  # npm does not always keep the executable bit
    return path


def in_checkout() -> bool:
    """Whether this package runs from a checkout (with `solidity/`), not from an installed wheel."""
    return SOLIDITY_DIR.is_dir()


def forge_build(tests: bool = False) -> None:
    """Compiles the contracts with the pinned forge and solcjs; fast when nothing changed. Without
    `tests`, forge's test and script files (`.t.sol`, `.s.sol`) are left out: the commands need
    none of them. Installed from a wheel there is nothing to compile: the shipped artifacts are the build."""
    if not in_checkout():
        return
    if shutil.which("node") is None:
        raise ToolchainError("node is not on PATH: the Solidity compiler (solcjs) needs Node.js")
    result = subprocess.run(
        [str(tool_path("forge")), "build", *([] if tests else ["--skip", "test", "--skip", "script"])],
        cwd=SOLIDITY_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ToolchainError(f"forge build failed:\n{result.stdout}\n{result.stderr}")
    artifact.cache_clear()


@cache
def artifact(contract: str) -> dict[str, Any]:
    """The forge artifact (abi, bytecode) of `contract`, e.g. "Coprocessor"."""
    matches = sorted((SOLIDITY_DIR / "out").glob(f"*.sol/{contract}.json")) or sorted((SHIPPED_DIR / "artifacts").glob(f"{contract}.json"))
    if not matches:
        raise ToolchainError(f"no build artifact for {contract}: run `forge build` in solidity/ ({_SETUP_HINT})")
    loaded: dict[str, Any] = json.loads(matches[0].read_text())
    return loaded


def npm_errors(package: str) -> list[dict[str, Any]]:
    """Every custom error (ABI item) the compiled artifacts of an npm package declare; [] without the package."""
    shipped = SHIPPED_DIR / "npm" / package / "errors.json"
    if not (NODE_MODULES / package).is_dir() and shipped.is_file():
        return list(json.loads(shipped.read_text()))
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
    matches = sorted((NODE_MODULES / package / "out").glob(f"*.sol/{contract}.json")) or sorted(
        (SHIPPED_DIR / "npm" / package).glob(f"{contract}.json")
    )
    if not matches:
        raise ToolchainError(f"no artifact for {contract} in {package}: {_SETUP_HINT}")
    loaded: dict[str, Any] = json.loads(matches[0].read_text())
    return loaded


def ship_build_outputs(destination: Path = SHIPPED_DIR) -> Path:
    """Copies what an installed package needs from the checkout's build outputs into `destination`
    (the package's `shipped/`, which the wheel carries): our contracts' ABIs and bytecode (forge's
    artifacts of solidity/src, trimmed), the v4 contracts and v4-core's errors, and the template library
    (zipped: see `_shipped_templates`)."""
    if not in_checkout():
        raise ToolchainError("ship_build_outputs runs in a checkout: it copies forge's and npm's outputs")
    forge_build()
    if destination.exists():
        shutil.rmtree(destination)
    (destination / "artifacts").mkdir(parents=True)
    for path in sorted((SOLIDITY_DIR / "out").glob("*.sol/*.json")):
        data = json.loads(path.read_text())
        target = ((data.get("metadata") or {}).get("settings") or {}).get("compilationTarget") or {}
        if any(source.startswith("src/") for source in target):
            trimmed = {"abi": data["abi"], "bytecode": {"object": data["bytecode"]["object"]}}
            (destination / "artifacts" / path.name).write_text(json.dumps(trimmed))
    for package, contracts in _SHIPPED_NPM.items():
        folder = destination / "npm" / package
        folder.mkdir(parents=True)
        for contract in contracts:
            data = npm_artifact(package, contract)
            (folder / f"{contract}.json").write_text(json.dumps({"abi": data["abi"], "bytecode": {"object": data["bytecode"]["object"]}}))
        (folder / "errors.json").write_text(json.dumps(npm_errors(package)))
    with zipfile.ZipFile(destination / "templates.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted((PROJECT_ROOT / "templates").rglob("*")):
            relative = path.relative_to(PROJECT_ROOT / "templates")
            if path.is_file() and not {"__pycache__", ".pytest_cache"} & set(relative.parts):
                bundle.write(path, relative.as_posix())
    return destination
