"""The measured image is only the enclave: its own package, importing nothing of the node."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import coprocessor_enclave
from coprocessor_enclave.attestation import PACKAGE_DIR, dev_compose_hash, measured_files
from coprocessor_enclave.template import files_hash

# What the key holder and its workers load: the entry point, the key holder, the fork server and the SDK.
ENCLAVE_MODULES = [
    "coprocessor_enclave.__main__",
    "coprocessor_enclave.forkserver",
    "coprocessor_enclave.sdk",
    "coprocessor_enclave.chainread",
    "coprocessor_enclave.devpki",
]
NODE_ONLY = ("coprocessor", "web3", "click", "apscheduler", "dcap_qvl", "dstack_sdk", "httpx")


def test_enclavePackage_importsNothingOfTheNode() -> None:
    for path in Path(coprocessor_enclave.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            assert not [n for n in names if n.split(".")[0] == "coprocessor"], f"{path.name} imports the node's package"


def test_enclaveProcess_loadsNoNodeLibrary() -> None:
    probe = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in ENCLAVE_MODULES)
        + f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({NODE_ONLY!r})))"
    )
    loaded = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"


def test_devImageId_measuresTheEnclavePackageOnly() -> None:
    files = measured_files()
    sources = {p.relative_to(PACKAGE_DIR).as_posix() for p in PACKAGE_DIR.glob("*.py")}
    assert sources <= set(files) and "py.typed" in files
    assert not [f for f in files if "__pycache__" in f or "/" in f]  # a flat package, its sources only
    assert dev_compose_hash() == files_hash(files)


def test_enclaveServe_help_isItsOwnProgram() -> None:
    shown = subprocess.run([sys.executable, "-m", "coprocessor", "enclave", "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "usage: coprocessor-enclave serve" in shown.stdout
    assert "--token-file" in shown.stdout and "COPROCESSOR_CHAIN_RPC" in shown.stdout


def test_enclaveServe_runsIsolated_noSitecustomizeOrPythonpath(tmp_path: Path) -> None:
    """Code on PYTHONPATH runs in the node's CLI (its own business) but never again in the enclave it execs."""
    (tmp_path / "sitecustomize.py").write_text("import os\nos.write(1, b'UNMEASURED CODE RAN\\n')\n")
    shown = subprocess.run(
        [sys.executable, "-m", "coprocessor", "enclave", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
    )
    assert "usage: coprocessor-enclave serve" in shown.stdout
    assert shown.stdout.count("UNMEASURED CODE RAN") == 1  # the CLI's process, before exec; not the enclave's
