"""Template manifests: validation errors are clear, ids are content hashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coprocessor.errors import ManifestError
from coprocessor.template import bundle_hash, encode_args, load_template
from coprocessor.toolchain import TEMPLATES_DIR

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
        (GOOD_MANIFEST.replace('inputs = ["uint256"]', 'inputs = ["uint257"]'), "not a valid ABI type"),
        (GOOD_MANIFEST.replace('outputs = ["uint256"]', "outputs = []"), "at least one ABI type"),
        (GOOD_MANIFEST + "[limits]\ntimeout_seconds = 600\n", "limits out of range"),
        (GOOD_MANIFEST + "[limits]\ncpu = 1\n", "unknown limits"),
        ("name = ", "not valid TOML"),
    ],
)
def test_loadTemplate_invalidManifestRaisesClearError(tmp_path: Path, manifest: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_template(_make(tmp_path, manifest))


def test_bundleHash_stableAcrossCopiesAndIgnoresCaches(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(TEMPLATES_DIR / "median-price", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"cache")
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
