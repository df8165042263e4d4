"""`coprocessor-enclave serve`: the enclave's own entry point, which imports nothing of the node.

`coprocessor enclave serve` runs this too. Every option can also be set as an environment
variable: `--chain-rpc` as `COPROCESSOR_CHAIN_RPC`, and so on.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from .attestation import DEV_BANNER, AttestationBackend, DevBackend, DstackBackend
from .capabilities import CapabilitySettings, load_remote_chains, load_secrets
from .enclave import DEFAULT_CONCURRENCY, Binding, Enclave, EnclaveConfig
from .errors import CoprocessorError, EnclaveError
from .pool import DEFAULT_WARM_TEMPLATES
from .rpc import make_server, write_token
from .template import load_templates

_DESCRIPTION = """Generates a signing key inside this process and serves the enclave's RPC: GET /info
(public) and POST /attest, /rotate, /activate, /run and /quote, which answer only a caller
presenting the token this process writes to --token-file (readable by its owner only)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coprocessor-enclave", description="The coprocessor's enclave: key holder and template runner.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", description=_DESCRIPTION, help="serve the enclave's RPC")

    def option(name: str, **kwargs: object) -> None:
        env = "COPROCESSOR_" + name.removeprefix("--").replace("-", "_").upper()
        if kwargs.get("action") == "store_true":
            kwargs["default"] = os.environ.get(env, "") not in ("", "0", "false")
        elif kwargs.get("action") == "append":
            kwargs["default"] = [p for p in os.environ.get(env, "").split(os.pathsep) if p] or None
        elif env in os.environ:
            kwargs["default"] = os.environ[env]
            kwargs["required"] = False
        kwargs["help"] = f"{kwargs.get('help', '')} [env {env}]"
        serve.add_argument(name, **kwargs)  # type: ignore[arg-type]

    option("--chain-id", type=int, required=True, help="chain the enclave signs for")
    option("--coprocessor", required=True, help="Coprocessor address (the EIP-712 verifying contract)")
    option("--registry", required=True, help="EnclaveRegistry address (bound into the attestation)")
    option(
        "--also",
        action="append",
        metavar="CHAIN_ID,COPROCESSOR,REGISTRY[,RPC_URL]",
        help="one more chain this enclave's key answers (its Coprocessor, its EnclaveRegistry, and where templates read it); repeatable",
    )
    option(
        "--forwarders",
        action="append",
        metavar="CHAIN_ID=ADDRESS[,ADDRESS...]",
        help="contracts that request for others on a chain (Subscriptions, Sponsorships): inputs sealed to them are refused; repeatable",
    )
    option("--payee", required=True, help="account credited with fees for this enclave's responses")
    option(
        "--backend",
        choices=["dstack", "dev"],
        required=True,
        help="dstack: Intel TDX in a dstack CVM; dev: development quotes from a local PKI (NOT SECURE). No default: dev is never a fallback",
    )
    option("--templates", action="append", required=True, type=Path, help="folder of templates (or one template folder); repeatable")
    option(
        "--token-file",
        type=Path,
        default=Path(".coprocessor/enclave.token"),
        help="where to write the token callers must present (mode 0600); default .coprocessor/enclave.token",
    )
    option("--host", default="127.0.0.1", help="address to bind; default 127.0.0.1")
    option("--port", type=int, default=0, help="0 picks a free port; the URL is printed on stdout")
    option(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"template runs at once (the worst case in memory is this many times a template's memory_mb); default {DEFAULT_CONCURRENCY}",
    )
    option(
        "--warm-templates",
        type=int,
        default=DEFAULT_WARM_TEMPLATES,
        help=f"templates kept warm (a zygote and a spare worker each, about 5 MB); the least recently run goes first; default {DEFAULT_WARM_TEMPLATES}",
    )
    option("--dev-pki", type=Path, default=Path(".coprocessor/dev-pki"), help="dev: where the development PKI lives (created if missing)")
    option("--dstack-endpoint", default=None, help="dstack: guest agent socket or URL (default: dstack-sdk's)")
    option("--chain-rpc", default=None, help="JSON-RPC URL templates read chain state from (untrusted: every answer is verified)")
    option(
        "--read-chains",
        type=Path,
        default=None,
        help="TOML file of other chains templates may read (ctx.chain(chain_id, block)): each chain's independent RPCs, "
        "the quorum that must agree on a block and its finality depth (docs/chains.md)",
    )
    option(
        "--secrets",
        type=Path,
        default=None,
        help="TOML file of plaintext secrets, each bound to the template ids that may read it: DEVELOPMENT ONLY "
        "(the operator reads them; seal secrets with `coprocessor secrets put` instead)",
    )
    option("--http-allow-private", action="store_true", help="let templates reach loopback and private addresses (local development only)")
    return parser


def parse_binding(text: str) -> Binding:
    """`CHAIN_ID,COPROCESSOR,REGISTRY[,RPC_URL]` (--also) as a Binding."""
    parts = text.split(",", 3)
    if len(parts) < 3 or not parts[0].strip().isdigit():
        raise EnclaveError(f"--also {text!r}: give CHAIN_ID,COPROCESSOR,REGISTRY[,RPC_URL]")
    return Binding(int(parts[0]), parts[1].strip(), parts[2].strip(), parts[3].strip() if len(parts) == 4 else None)


def parse_forwarders(text: str) -> list[tuple[int, str]]:
    """`CHAIN_ID=ADDRESS[,ADDRESS...]` (--forwarders) as (chain id, address) pairs."""
    chain, _, addresses = text.partition("=")
    if not chain.strip().isdigit() or not addresses.strip():
        raise EnclaveError(f"--forwarders {text!r}: give CHAIN_ID=ADDRESS[,ADDRESS...]")
    return [(int(chain), a.strip()) for a in addresses.split(",") if a.strip()]


def serve(args: argparse.Namespace) -> None:
    """Starts the key holder and serves it until SIGTERM or Ctrl-C."""
    backend: AttestationBackend
    if args.backend == "dev":
        print(DEV_BANNER, file=sys.stderr)
        backend = DevBackend(args.dev_pki)
    else:
        backend = DstackBackend(args.dstack_endpoint)
    capabilities = CapabilitySettings(
        chain_rpc=args.chain_rpc,
        remote_chains=load_remote_chains(args.read_chains) if args.read_chains else {},
        secrets=load_secrets(args.secrets) if args.secrets else {},
        allow_private_hosts=args.http_allow_private,
    )
    config = EnclaveConfig(
        int(args.chain_id),
        args.coprocessor,
        args.registry,
        args.payee,
        others=tuple(map(parse_binding, args.also or ())),
        forwarders=tuple(f for text in args.forwarders or () for f in parse_forwarders(text)),
    )
    enclave = Enclave(config, load_templates(list(args.templates)), backend, int(args.concurrency), capabilities, int(args.warm_templates))
    token = write_token(args.token_file)
    server = make_server(enclave, token, args.host, int(args.port))
    # Templates may never call the enclave's own RPC, whatever hosts they declare.
    enclave.capabilities = replace(enclave.capabilities, reserved_ports=frozenset({server.server_address[1]}))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"enclave listening on http://{args.host}:{server.server_address[1]}", flush=True)
    print(f"enclave {enclave.address} serving {len(enclave.templates)} templates; token in {args.token_file}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        enclave.close()


def main(argv: list[str] | None = None) -> None:
    """Parses `argv` and runs the command; our errors end in one line and exit code 1."""
    if not sys.flags.isolated:
        # Only measured code may run here: in isolated mode Python ignores PYTHONPATH, PYTHON*
        # variables, the user's site-packages and the current directory (a `coprocessor_enclave/`
        # or `sitecustomize.py` there). Nothing of this process has touched a key yet.
        os.execv(sys.executable, [sys.executable, "-I", "-m", "coprocessor_enclave", *(sys.argv[1:] if argv is None else argv)])
    args = _parser().parse_args(argv)
    try:
        serve(args)
    except CoprocessorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
