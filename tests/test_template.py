"""Template manifests: validation errors are clear, ids are content hashes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from coprocessor.dev.toolchain import TEMPLATES_DIR, tool_path
from coprocessor.errors import ManifestError
from coprocessor_enclave.template import bundle_hash, encode_args, load_template

GOOD_MANIFEST = """
name = "demo"
version = "1.0.0"
entry = "main:run"
inputs = ["uint256"]
outputs = ["uint256"]
"""


def _make(tmp_path: Path, manifest: str, files: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "template.toml").write_text(manifest)
    for name, text in (files or {"main.py": "def run(ctx, x):\n    return x\n"}).items():
        (folder / name).write_text(text)
    return folder


def test_loadTemplate_validManifest(tmp_path: Path) -> None:
    template = load_template(_make(tmp_path, GOOD_MANIFEST))
    assert (template.name, template.inputs, template.outputs) == ("demo", ("uint256",), ("uint256",))
    assert template.limits.timeout_seconds == 5.0


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (GOOD_MANIFEST.replace('name = "demo"', ""), "missing required key `name`"),
        (GOOD_MANIFEST.replace('"demo"', '"Demo Template"'), "lowercase"),
        (GOOD_MANIFEST.replace('"main:run"', '"main"'), "module:function"),
        (GOOD_MANIFEST.replace('"main:run"', '"other:run"'), "other.py not found"),
        (GOOD_MANIFEST.replace('inputs = ["uint256"]', 'inputs = ["uint257"]'), "not an ABI type; types are uint<M>"),
        (GOOD_MANIFEST.replace('inputs = ["uint256"]', 'inputs = ["strin"]'), "'strin' is not an ABI type"),  # the grammar alone took it
        (GOOD_MANIFEST.replace('"main:run"', '"main:runn"'), "entry function `runn` is not defined at the top level of main.py"),
        (GOOD_MANIFEST.replace('outputs = ["uint256"]', "outputs = []"), "at least one ABI type"),
        (GOOD_MANIFEST + "[limits]\ntimeout_seconds = 600\n", r"\[limits\] out of range"),
        (GOOD_MANIFEST + "[limits]\ncpu = 1\n", r"unknown keys in \[limits\]: \['cpu'\]"),
        (GOOD_MANIFEST + '[limits]\nmemory_mb = "lots"\n', r"\[limits\] memory_mb must be a int"),
        (GOOD_MANIFEST + 'secret = ["KEY"]\n', r"unknown keys \['secret'\]"),
        (GOOD_MANIFEST + 'secrets = ["lower"]\n', "`secrets` must be a list of names"),
        (GOOD_MANIFEST + '[http]\nhosts = "api.example.com"\n', r"\[http\] hosts must be a list, got"),
        (GOOD_MANIFEST + '[http]\nhosts = ["https://api.example.com"]\n', r"\[http\] hosts must be a list"),
        (GOOD_MANIFEST + "[http]\nmax_requests = 1000\n", r"\[http\] out of range"),
        (GOOD_MANIFEST + "[http]\ntimeout_seconds = 9\n", "at most \\[limits\\] timeout_seconds"),
        (GOOD_MANIFEST + "config = 3\n", r"\[config\] must be a table"),
        ("name = ", "not valid TOML"),
    ],
)
def test_loadTemplate_invalidManifestRaisesClearError(tmp_path: Path, manifest: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_template(_make(tmp_path, manifest))


def test_loadTemplate_capabilitiesParsed(tmp_path: Path) -> None:
    manifest = GOOD_MANIFEST + (
        'secrets = ["API_KEY"]\n'
        '[http]\nhosts = ["api.example.com", "*.example.org", "127.0.0.1:*"]\nmax_requests = 2\n'
        '[config]\nendpoint = "https://api.example.com/v1"\n'
    )
    template = load_template(_make(tmp_path, manifest))
    assert template.http.hosts == ("api.example.com", "*.example.org", "127.0.0.1:*")
    assert (template.http.max_requests, template.http.timeout_seconds) == (2, 5.0)
    assert template.secrets == ("API_KEY",)
    assert template.config == {"endpoint": "https://api.example.com/v1"}


def test_bundleHash_stableAcrossCopies(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(TEMPLATES_DIR / "median-price", copy)
    assert bundle_hash(copy) == bundle_hash(TEMPLATES_DIR / "median-price")


def test_bundleHash_changesWithOneByteOrRename(tmp_path: Path) -> None:
    folder = _make(tmp_path, GOOD_MANIFEST)
    original = bundle_hash(folder)
    (folder / "main.py").write_text("def run(ctx, x):\n    return x \n")
    edited = bundle_hash(folder)
    (folder / "main.py").rename(folder / "main2.py")
    renamed = bundle_hash(folder)
    assert len({original, edited, renamed}) == 3


def test_encodeArgs_wrongCountRaises(tmp_path: Path) -> None:
    template = load_template(_make(tmp_path, GOOD_MANIFEST))
    with pytest.raises(ManifestError, match="takes 1 inputs"):
        encode_args(template, [1, 2])


# The one-liner docs/templates.md gives for recomputing a template id without this package.
ID_ONE_LINER = (
    "find . -type f | sed 's|^\\./||' | LC_ALL=C sort"
    ' | while IFS= read -r f; do printf \'%s\\0%s\\0\' "$f" "$(wc -c < "$f")"; cat "$f"; done'
    " | od -An -v -tx1 | tr -d ' \\n' | sed 's/^/0x/' | xargs \"$CAST\" keccak"
)


@pytest.mark.parametrize("name", ["median-price"])
def test_templateId_reproducibleFromAShellOneLiner(name: str, tmp_path: Path) -> None:
    folder = tmp_path / name
    shutil.copytree(TEMPLATES_DIR / name, folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "data.json").write_text('{"a": 1}\n')
    (folder / " spaced name.txt ").write_text("kept, spaces and all")
    shell = subprocess.run(
        ["bash", "-c", ID_ONE_LINER],
        cwd=folder,
        env={"CAST": str(tool_path("cast")), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.strip() == load_template(folder).id_hex


def test_bundleHash_refusesSymbolicLinks(tmp_path: Path) -> None:
    folder = _make(tmp_path, GOOD_MANIFEST)
    (folder / "data.json").symlink_to("/etc/hostname")
    with pytest.raises(ManifestError, match="data.json is a symbolic link"):
        load_template(folder)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def run(ctx, x)\n    return x\n", "main.py does not compile: expected ':' \\(line 1\\)"),
        ("def helper(ctx, x):\n    def run():\n        pass\n", "entry function `run` is not defined"),
    ],
)
def test_loadTemplate_entryModuleBroken_refusedAtLoadNotAtTheFirstRequest(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_template(_make(tmp_path, GOOD_MANIFEST, {"main.py": source}))


@pytest.mark.parametrize(
    "source",
    [
        "from helpers import run\n",
        "import math\nrun = lambda ctx, x: x\n",
        "try:\n    from fast import run\nexcept ImportError:\n    def run(ctx, x):\n        return x\n",
        "from helpers import *\n",
    ],
)
def test_loadTemplate_entryBoundOtherwise_accepted(tmp_path: Path, source: str) -> None:
    assert (
        load_template(
            _make(tmp_path, GOOD_MANIFEST, {"main.py": source, "helpers.py": "def run(ctx, x):\n    return x\n", "fast.py": ""})
        ).entry
        == "main:run"
    )
