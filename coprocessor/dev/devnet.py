"""A local development network: Anvil, the contracts, a dev enclave, registered and ready to serve."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coprocessor.node.enclave_client import EnclaveClient
from coprocessor_enclave.attestation import dev_image_id
from coprocessor_enclave.protocol import EnclaveRecord, TeeType

from ..attest.attestor import Policy
from ..attest.registration import Registrar
from ..chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
from ..config import default_state_dir as default_state_dir  # re-exported: `dev`'s default
from ..errors import ToolchainError
from ..node import catalog
from .toolchain import tool_path

if TYPE_CHECKING:
    from web3 import Web3

    from coprocessor_enclave.template import Template

# Roles on a dev chain, by index into ANVIL_KEYS.
DEPLOYER, NODE, ATTESTOR, USER, PAYEE, AUTHOR = range(6)  # Anvil dev accounts by role
# A sponsor of HTTP jobs, and the node's jobs account, which relays API-key jobs (a dev cluster's second and third
# nodes use them too, and serve no jobs; #6 and #7 stay free for users, as the README has them deploy from #7).
SPONSOR, JOBS = 8, 9

DEV_ENCLAVE_VALIDITY = 30 * 24 * 3600


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the parent dies, however the parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_anvil(port: int, extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Starts the pinned Anvil on loopback and waits until it answers."""
    process = subprocess.Popen(
        [str(tool_path("anvil")), "--host", "127.0.0.1", "--port", str(port), "--silent", *extra_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ToolchainError(f"anvil exited at start: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise ToolchainError(f"anvil did not open port {port} within 20 s")


def deploy(
    rpc_url: str,
    allow_dev: bool = True,
    attestors: Sequence[str] = (),
    threshold: int = 1,
    templates: Iterable[Template] = (),
) -> Deployment:
    """Deploys the registries, Coprocessor, KeyRegistry, Subscriptions, Sponsorships and ExampleConsumer; allows the DEV image; publishes `templates` (no fee)."""
    w3 = connect(rpc_url)
    deployer = TxSender(w3, ANVIL_KEYS[DEPLOYER])
    attestors = list(attestors) or [TxSender(w3, ANVIL_KEYS[ATTESTOR]).address]
    start_block = w3.eth.block_number
    registry = deployer.deploy("EnclaveRegistry", deployer.address, allow_dev, attestors, threshold)
    template_registry = deployer.deploy("TemplateRegistry")
    coprocessor = deployer.deploy("Coprocessor", registry, template_registry, deployer.address)
    key_registry = deployer.deploy("KeyRegistry", coprocessor, registry)
    subscriptions = deployer.deploy("Subscriptions", coprocessor)
    sponsorships = deployer.deploy("Sponsorships", coprocessor)
    consumer = deployer.deploy("ExampleConsumer", coprocessor)
    if allow_dev:
        deployer.call_function(contract(w3, "EnclaveRegistry", registry), "allowImage", dev_image_id(), int(TeeType.DEV))
    publish_templates(w3, template_registry, templates)
    return Deployment(
        w3.eth.chain_id, registry, template_registry, coprocessor, key_registry, subscriptions, sponsorships, consumer, start_block
    )


def publish_templates(w3: Web3, template_registry: str, templates: Iterable[Template], author_fee: int = 0) -> None:
    """Publishes each template (no uri) as the AUTHOR account, which `template publish` uses on a dev chain too."""
    author = TxSender(w3, ANVIL_KEYS[AUTHOR])
    for template in templates:
        catalog.publish(author, template_registry, template.template_id, template.name, template.version, "", author_fee)


def start_enclave(
    deployment: Deployment,
    payee: str,
    template_dirs: Sequence[Path],
    pki_dir: Path,
    token_file: Path,
    log_file: Path | None = None,
    chain_rpc: str | None = None,
    secrets_file: Path | None = None,
    also: Sequence[tuple[Deployment, str]] = (),
    read_chains: Path | None = None,
) -> tuple[subprocess.Popen[bytes], EnclaveClient]:
    """Starts `coprocessor-enclave serve --backend dev` as its own process; returns it and a client holding
    the token it wrote to `token_file`. `also`: more chains it answers, each (deployment, RPC URL);
    `read_chains`: the file of other chains its templates may read (`--read-chains`).

    Local development: templates may reach loopback and private addresses over HTTP.
    """
    command = [
        sys.executable,
        "-I",
        "-m",
        "coprocessor_enclave",
        "serve",
        "--token-file",
        str(token_file),
        "--chain-id",
        str(deployment.chain_id),
        "--coprocessor",
        deployment.coprocessor,
        "--registry",
        deployment.registry,
        "--payee",
        payee,
        "--port",
        "0",
        "--backend",
        "dev",
        "--dev-pki",
        str(pki_dir),
        "--http-allow-private",
    ]
    if chain_rpc:
        command += ["--chain-rpc", chain_rpc]
    for other, other_rpc in also:
        command += ["--also", f"{other.chain_id},{other.coprocessor},{other.registry},{other_rpc}"]
    for served in (deployment, *(other for other, _ in also)):  # they request for others: nothing is sealed to them
        command += ["--forwarders", f"{served.chain_id}={served.subscriptions},{served.sponsorships}"]
    if secrets_file:
        command += ["--secrets", str(secrets_file)]
    if read_chains:
        command += ["--read-chains", str(read_chains)]
    for folder in template_dirs:
        command += ["--templates", str(folder)]
    stderr = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, preexec_fn=die_with_parent)
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("enclave listening on "):
        process.kill()
        raise ToolchainError(f"enclave did not start (said {line!r}); see {log_file or 'its stderr'}")
    return process, EnclaveClient.with_token_file(line.removeprefix("enclave listening on "), token_file)


def dev_registrar(
    rpc_url: str,
    deployment: Deployment,
    pki_dir: Path,
    validity_seconds: int = DEV_ENCLAVE_VALIDITY,
    sender: TxSender | None = None,
) -> Registrar:
    """A registrar with the dev chain's attestor key, accepting the dev PKI's root (insecure, by design)."""
    from coprocessor_enclave.devpki import DevPki

    w3 = connect(rpc_url)
    policy = Policy(allowed_images=frozenset({dev_image_id()}), dev_root_ca_der=DevPki.load_or_create(pki_dir).root_ca_der)
    attestor_key = bytes.fromhex(ANVIL_KEYS[ATTESTOR].removeprefix("0x"))
    sender = sender or TxSender(w3, ANVIL_KEYS[NODE])
    return Registrar(sender.w3, deployment, sender, [attestor_key], policy, validity_seconds)


def register_enclave(rpc_url: str, deployment: Deployment, enclave: EnclaveClient, pki_dir: Path) -> EnclaveRecord:
    """Attests the dev enclave, verifies its DCAP quote with dcap-qvl as an attestor would, approves and registers it."""
    return dev_registrar(rpc_url, deployment, pki_dir).register(enclave)


def provision_keys(
    rpc_url: str, deployment: Deployment, enclave: EnclaveClient, templates: Iterable[Template], sender: TxSender | None = None
) -> int:
    """Makes the cluster's keys inside the enclave (genesis) and publishes every template's public keys
    in the KeyRegistry, signed by the enclave; returns the epoch."""
    epoch = enclave.keys_genesis()
    publish_all_keys(rpc_url, deployment, enclave, templates, sender)
    return epoch


def publish_all_keys(
    rpc_url: str, deployment: Deployment, enclave: EnclaveClient, templates: Iterable[Template], sender: TxSender | None = None
) -> None:
    """Publishes every template's public keys of the enclave's current epoch in the deployment's KeyRegistry."""
    from ..confidential import publish_keys

    sender = sender or TxSender(connect(rpc_url), ANVIL_KEYS[NODE])
    for template in templates:
        publish_keys(sender, deployment, enclave, template.template_id)


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Stops a child process politely, then firmly."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
