"""The package installs and runs outside a checkout: a wheel built from the source carries the contracts'
ABIs and bytecode and the template library (`coprocessor/shipped/`), and, installed in a fresh virtualenv
and run from an empty folder, `deploy`, `enclave serve` and `node` work."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from coprocessor.chain import ANVIL_KEYS, Deployment, connect
from coprocessor.dev import devnet
from coprocessor.dev.toolchain import PROJECT_ROOT, ship_build_outputs, tool_path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed (its dependencies are this one's, through a .pth file)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    for package in ("coprocessor", "coprocessor_enclave"):
        shutil.copytree(PROJECT_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "shipped"))
    ship_build_outputs(source / "coprocessor" / "shipped")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(root / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "dist").glob("coprocessor-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # Only the dependencies come from here: a path in a .pth file is not a site dir, so this venv's editable finder stays out.
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    return venv


def _env(cache: Path) -> dict[str, str]:
    """Nothing of this checkout's environment, and a cache of the test's own (the library unpacks there)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("COPROCESSOR_") and k != "PYTHONPATH"}
    return {**kept, "XDG_CACHE_HOME": str(cache)}


def test_installedWheel_outsideTheCheckout_usesWhatItShips(installed: Path, tmp_path: Path) -> None:
    probe = "import coprocessor, coprocessor.dev.toolchain as t; print(coprocessor.__file__, t.in_checkout(), t.TEMPLATES_DIR.is_dir(), t.artifact('Coprocessor')['abi'] != [])"
    shown = subprocess.run(
        [str(installed / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown[0].startswith(str(installed)), f"imported {shown[0]}, not the installed wheel"
    assert shown[1:] == ["False", "True", "True"]


def test_installedWheel_deployEnclaveServeAndNode_runFromAnEmptyFolder(installed: Path, bare_anvil: str, tmp_path: Path) -> None:
    anvil = bare_anvil
    coprocessor = str(installed / "bin" / "coprocessor")
    env = _env(tmp_path / "cache")
    deployed = subprocess.run(
        [coprocessor, "--state-dir", str(tmp_path), "deploy", "--rpc", anvil], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert deployed.returncode == 0, deployed.stderr
    deployment = Deployment.load(tmp_path / "deployment.json")
    w3 = connect(anvil)
    # contracts from the shipped bytecode
    deployment.check_on(w3, "coprocessor", "registry", "template_registry", "key_registry", "consumer")

    enclave = subprocess.Popen(
        [
            coprocessor,
            "enclave",
            "serve",
            "--token-file",
            str(tmp_path / "enclave.token"),
            "--chain-id",
            str(deployment.chain_id),
            "--coprocessor",
            deployment.coprocessor,
            "--registry",
            deployment.registry,
            "--payee",
            "0x" + "11" * 20,
            "--port",
            "0",
            "--backend",
            "dev",
            "--dev-pki",
            str(tmp_path / "pki"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    node = None
    try:
        assert enclave.stdout is not None
        line = enclave.stdout.readline().strip()
        assert line.startswith("enclave listening on "), line
        url = line.removeprefix("enclave listening on ")
        node = subprocess.Popen(
            [coprocessor, "--state-dir", str(tmp_path), "node", "--rpc", anvil, "--enclave", url],
            cwd=tmp_path,
            env={**env, "COPROCESSOR_NODE_KEY": ANVIL_KEYS[devnet.NODE]},
            stderr=subprocess.PIPE,
            text=True,
        )
        assert node.stderr is not None
        deadline, seen = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            text = node.stderr.readline()
            if not text:
                break
            seen.append(text)
            if "node serving" in text:
                break
        assert any("node serving" in s for s in seen), "".join(seen[-20:])
        assert (tmp_path / "journal.sqlite").is_file()
    finally:
        for process in (node, enclave):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_installedWheel_devDemo_runsWithAnvilFromPath(installed: Path, tmp_path: Path) -> None:
    anvil_dir = tool_path("anvil").parent
    env = {**_env(tmp_path / "cache"), "PATH": f"{installed / 'bin'}{os.pathsep}{anvil_dir}{os.pathsep}{os.environ['PATH']}"}
    port = devnet.free_port()
    command = [
        "coprocessor",
        "--state-dir",
        str(tmp_path / "state"),
        "dev",
        "--demo",
        "--port",
        str(port),
        "--quote-port",
        "0",
        "--jobs-port",
        "0",
    ]
    demo = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "next swap's Swap event fee" in demo.stdout  # the v4 stack from the shipped v4-core bytecode
    assert "A cron job:" in demo.stdout and "A read across chains:" in demo.stdout  # issue 14's part of the demo
    assert (tmp_path / "state" / "deployment.json").is_file()


def test_installedWheel_withoutAnvil_saysWhatToInstall(installed: Path, tmp_path: Path) -> None:
    env = {**_env(tmp_path / "cache"), "PATH": f"{installed / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    dev = subprocess.run(
        ["coprocessor", "--state-dir", str(tmp_path), "dev", "--port", str(devnet.free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dev.returncode != 0
    assert "anvil is not on PATH" in dev.stderr and "npm install @foundry-rs/anvil-linux-amd64@" in dev.stderr, dev.stderr
    assert "Traceback" not in dev.stderr


def test_installedWheel_templateTest_runsALibraryTemplatesTests(installed: Path, tmp_path: Path) -> None:
    tested = subprocess.run(
        [str(installed / "bin" / "coprocessor"), "template", "test", "median-price", "-q"],
        cwd=tmp_path,
        env=_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout and "failed" not in tested.stdout
