"""`coprocessor template ...`: scaffold, run, test, publish, deprecate and list task templates."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import CoprocessorError, ManifestError
from .options import deployment_option, dev_or_env_sender, json_args, load_template_dirs, rpc_option, templates_option

if TYPE_CHECKING:  # imported where they are used: see __init__.py
    from ..node import catalog


@click.group("template")
def template_group() -> None:
    """Task templates: scaffold, run and test locally, publish on-chain, list."""


# ----------------------------------------------------------------------------- new

_SCAFFOLD_MANIFEST = """name = "{name}"
version = "0.1.0"
description = "What {name} computes, in one line."
entry = "main:run"
# ABI types of the request input and of the result.
inputs = ["uint256[]"]
outputs = ["uint256", "uint256"]

# Uncomment to fetch data (hosts are checked by the enclave, redirects too):
# [http]
# hosts = ["api.example.com"]

[limits]
timeout_seconds = 2
memory_mb = 256
"""

_SCAFFOLD_MAIN = '''"""{name}: the mean and the spread of a list of numbers (replace with your task)."""

from coprocessor.sdk import Context, InvalidInput


def run(ctx: Context, values: tuple[int, ...]) -> tuple[int, int]:
    """Returns (floor of the mean, max - min) of `values`."""
    if not values:
        raise InvalidInput("give at least one value")  # -> status InvalidInput, the reason goes on-chain
    ctx.log(f"{{len(values)}} values")
    return sum(values) // len(values), max(values) - min(values)
'''

_SCAFFOLD_TEST = '''"""Runs {name} through the real enclave and worker path (no chain needed).

`template_runner` comes from the coprocessor package's pytest plugin: a runner over this template.
"""

from coprocessor.protocol import Status


def test_run_meanAndSpread(template_runner) -> None:
    assert template_runner.run(args=[[10, 20, 60]]).values == (30, 50)


def test_run_emptyInputIsInvalid(template_runner) -> None:
    result = template_runner.run(args=[[]])
    assert result.status == Status.INVALID_INPUT and "at least one value" in result.reason
'''

_SCAFFOLD_README = """# {name}

What it computes and why a contract would ask for it.

- input: `(uint256[] values)`
- output: `(uint256 mean, uint256 spread)`

From the folder `coprocessor template new` ran in:

```
coprocessor template run {path} --input '[[10, 20, 60]]'
coprocessor template test {path}
```
"""


@template_group.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the template folder.",
)
def template_new(name: str, parent: Path) -> None:
    """Scaffold a working template NAME (manifest, entry, README, a test)."""
    from coprocessor_enclave.template import MANIFEST, load_template

    if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", name):
        raise click.BadParameter("NAME must be lowercase letters, digits and dashes, starting with a letter", param_hint="NAME")
    folder = parent / name
    if folder.exists():
        raise click.BadParameter(f"{folder} already exists", param_hint="NAME")
    (folder / "tests").mkdir(parents=True)
    (folder / MANIFEST).write_text(_SCAFFOLD_MANIFEST.format(name=name))
    (folder / "main.py").write_text(_SCAFFOLD_MAIN.format(name=name))
    (folder / "README.md").write_text(_SCAFFOLD_README.format(name=name, path=folder.as_posix()))
    (folder / "tests" / f"test_{name.replace('-', '_')}.py").write_text(_SCAFFOLD_TEST.format(name=name))
    template = load_template(folder)
    click.echo(f"created {folder}/ ({template.id_hex})")
    click.echo(f"next: coprocessor template test {folder}")


# ----------------------------------------------------------------------------- run / test


def _resolve(key: str, template_dirs: tuple[Path, ...]) -> Path:
    """A template folder from a path, or from a name/id among `template_dirs` (default: the library)."""
    from coprocessor_enclave.template import MANIFEST

    if (Path(key) / MANIFEST).is_file():
        return Path(key)
    for template in load_template_dirs(template_dirs).values():
        if key in (template.name, template.id_hex):
            return template.path
    raise ManifestError(f"{key!r} is neither a template folder nor a known template name or id")


@template_group.command("run")
@click.argument("template")
@click.option(
    "--input",
    "input_json",
    default="[]",
    show_default=True,
    help="JSON list of the template's inputs, e.g. '[[100, 101], 500]' (0x-hex for bytes); @file.json reads a file, - reads stdin.",
)
@click.option("--secret", "secret_pairs", multiple=True, metavar="NAME=VALUE", help="A secret the template declares; repeatable.")
@click.option("--rpc", "chain_rpc", default=None, help="Chain RPC for ctx.chain reads (anchored at the latest block, or --block).")
@click.option("--block", type=int, default=None, help="Anchor block for chain reads.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@templates_option
def template_run(
    template: str,
    input_json: str,
    secret_pairs: tuple[str, ...],
    chain_rpc: str | None,
    block: int | None,
    as_json: bool,
    template_dirs: tuple[Path, ...],
) -> None:
    """Run TEMPLATE (folder, name or id) once through the real enclave and worker path, no chain needed.

    \b
      coprocessor template run median-price --input '[[100, 101, 250], 500]'
      coprocessor template run ./my-task --input '[[1, 2, 3]]'
    """
    from coprocessor_enclave.template import to_jsonable
    from coprocessor_enclave.text import inert

    from ..testing import TemplateRunner

    args = json_args(input_json, "--input")
    secrets = {}
    for pair in secret_pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--secret")
        secrets[name] = value
    with TemplateRunner(_resolve(template, template_dirs), secrets=secrets, chain_rpc=chain_rpc) as runner:
        result = runner.run(None, args, anchor_block=block)
    shown = [to_jsonable(v) for v in result.values] if result.ok else result.reason
    if as_json:
        click.echo(json.dumps({"status": result.status.name, "output": shown, "seconds": result.seconds}))  # JSON escapes
    else:
        click.echo(f"{result.status.name} in {result.seconds * 1000:.0f} ms: {inert(str(shown))}")
    if not result.ok:
        sys.exit(2)


@template_group.command("test", context_settings={"ignore_unknown_options": True})
@click.argument("template")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@templates_option
def template_test(template: str, pytest_args: tuple[str, ...], template_dirs: tuple[Path, ...]) -> None:
    """Run TEMPLATE's own tests (pytest on its folder); extra arguments go to pytest."""
    import importlib.util

    from coprocessor_enclave.template import load_template

    folder = _resolve(template, template_dirs)
    load_template(folder)  # a broken manifest fails here, with its own message
    if importlib.util.find_spec("pytest") is None:
        raise click.UsageError("pytest is not installed here: pip install 'coprocessor[testing]'")
    command = [sys.executable, "-m", "pytest", str(folder), "-p", "no:cacheprovider", "--rootdir", str(folder), *pytest_args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no caches written into the bundle
    sys.exit(subprocess.call(command, env=env))


# ----------------------------------------------------------------------------- publish / deprecate / list


@template_group.command("publish")
@click.argument("template")
@click.option("--fee", default=0, show_default=True, help="Author fee in wei, paid on every Ok fulfilment; fixed for this version.")
@click.option("--uri", default="", help="Where the bundle can be fetched (e.g. a git URL at a commit, or ipfs://).")
@click.option(
    "--key-env", default="COPROCESSOR_AUTHOR_KEY", show_default=True, help="Environment variable holding the author's private key."
)
@rpc_option
@deployment_option
@templates_option
def template_publish(
    template: str, fee: int, uri: str, key_env: str, rpc: str, deployment_path: Path, template_dirs: tuple[Path, ...]
) -> None:
    """Publish TEMPLATE (folder, name or id) in the on-chain TemplateRegistry under its content-hash id."""
    from coprocessor_enclave.template import load_template

    from ..chain import Deployment, connect
    from ..node import catalog

    chosen = load_template(_resolve(template, template_dirs))
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "template_registry")
    author = dev_or_env_sender(w3, key_env, "AUTHOR", "the author")
    catalog.publish(author, deployment.template_registry, chosen.template_id, chosen.name, chosen.version, uri, fee)
    click.echo(f"published {chosen.name} v{chosen.version} as {chosen.id_hex} (author {author.address}, fee {fee} wei)")


@template_group.command("deprecate")
@click.argument("template_id")
@click.option(
    "--key-env", default="COPROCESSOR_AUTHOR_KEY", show_default=True, help="Environment variable holding the author's private key."
)
@rpc_option
@deployment_option
def template_deprecate(template_id: str, key_env: str, rpc: str, deployment_path: Path) -> None:
    """Deprecate a published TEMPLATE_ID: new requests for it are refused; pending ones still settle."""
    from ..chain import Deployment, connect
    from ..node import catalog

    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "template_registry")
    catalog.deprecate(
        dev_or_env_sender(w3, key_env, "AUTHOR", "the author"), deployment.template_registry, bytes.fromhex(template_id.removeprefix("0x"))
    )
    click.echo(f"deprecated {template_id}")


@template_group.command("list")
@click.option("--onchain/--local-only", default=None, help="Also list the on-chain catalogue (default: when a deployment record exists).")
@rpc_option
@deployment_option
@templates_option
def template_list(onchain: bool | None, rpc: str, deployment_path: Path, template_dirs: tuple[Path, ...]) -> None:
    """List local templates (ids, versions, types) and the on-chain catalogue (authors, fees, status)."""
    from coprocessor_enclave.text import inert

    from ..chain import Deployment, connect
    from ..node import catalog

    local = load_template_dirs(template_dirs)
    listed: dict[bytes, catalog.Listing] = {}
    if onchain or (onchain is None and deployment_path.is_file()):
        deployment = Deployment.load(deployment_path)
        try:
            w3 = connect(rpc, timeout=5)
        except CoprocessorError as exc:  # no chain running: the local list is still worth showing
            if onchain:
                raise
            click.echo(f"(on-chain catalogue unavailable: {exc}; --local-only skips it)", err=True)
        else:
            # A chain without the record's contracts is a stale record, an error: not an empty catalogue.
            deployment.check_on(w3, "template_registry")
            entries = catalog.listings(w3, deployment.template_registry, deployment.start_block)
            listed = {entry.template_id: entry for entry in entries}
    for template in local.values():
        entry = listed.get(template.template_id)
        where = "local only" if entry is None else _describe(entry)
        click.echo(
            f"{template.id_hex}  {template.name} v{inert(template.version)}  ({', '.join(template.inputs)}) -> ({', '.join(template.outputs)})  [{where}]"
        )
    for entry in listed.values():
        if entry.template_id not in local:
            click.echo(f"0x{entry.template_id.hex()}  {inert(entry.name)} v{inert(entry.version)}  [{_describe(entry)}; bundle not here]")


def _describe(entry: catalog.Listing) -> str:
    state = "deprecated" if entry.deprecated else "published"
    return f"{state} by {entry.author}, fee {entry.author_fee} wei"
