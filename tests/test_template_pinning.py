"""The template id pins every byte that can run: bundles holding anything else are refused, and
workers run the bytes that were hashed, from memory, never the folder again."""

from __future__ import annotations

import os
import py_compile
from pathlib import Path

import pytest

from coprocessor.dev.toolchain import TEMPLATES_DIR
from coprocessor.testing import TemplateRunner
from coprocessor_enclave.errors import ManifestError
from coprocessor_enclave.template import load_template

from .conftest import TEST_TEMPLATES

MANIFEST = 'name = "pinned"\nversion = "1.0.0"\nentry = "main:run"\ninputs = []\noutputs = ["uint256[]"]\n'


def _bundle(root: Path, answer: int = 1) -> Path:
    folder = root / "pinned"
    folder.mkdir()
    (folder / "template.toml").write_text(MANIFEST)
    (folder / "main.py").write_text(f"def run(ctx):\n    return [{answer}]\n")
    return folder


def _compiled(root: Path, answer: int) -> bytes:
    """Bytecode of a `main` that answers `answer`."""
    source = root / f"evil{answer}.py"
    source.write_text(f"def run(ctx):\n    return [{answer}]\n")
    return Path(py_compile.compile(str(source), cfile=str(root / f"evil{answer}.pyc"), doraise=True)).read_bytes()


@pytest.mark.parametrize(
    "where",
    ["__pycache__/main.cpython-311.pyc", "main.pyc", "main/__init__.pyc", "lib/helper.pyc", "main.cpython-311-x86_64-linux-gnu.so"],
)
def test_loadTemplate_bytecodeOrNativeModule_refused(tmp_path: Path, where: str) -> None:
    folder = _bundle(tmp_path)
    (folder / where).parent.mkdir(parents=True, exist_ok=True)
    (folder / where).write_bytes(_compiled(tmp_path, 666))
    with pytest.raises(ManifestError, match="compiled code the template id would not show"):
        load_template(folder)


@pytest.mark.parametrize("where", [".env", ".git/config", "data/.hidden.json"])
def test_loadTemplate_hiddenFile_refused(tmp_path: Path, where: str) -> None:
    folder = _bundle(tmp_path)
    (folder / where).parent.mkdir(parents=True, exist_ok=True)
    (folder / where).write_text("x")
    with pytest.raises(ManifestError, match="is hidden"):
        load_template(folder)


def test_loadTemplate_symlinkInsideDotFolder_refused(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "main.py").symlink_to(tmp_path / "evil666.py")
    with pytest.raises(ManifestError, match=r"\.cache"):
        load_template(folder)


def test_loadTemplate_symlinkedFolder_refused(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (folder / "lib").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ManifestError, match="lib is a symbolic link"):
        load_template(folder)


def test_loadTemplate_fifo_refused(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    os.mkfifo(folder / "pipe")
    with pytest.raises(ManifestError, match="pipe is not a regular file"):
        load_template(folder)


def test_run_fileChangedOnDiskAfterLoading_runsTheHashedBytes(tmp_path: Path) -> None:
    folder = _bundle(tmp_path, answer=1)
    with TemplateRunner(folder) as runner:
        template = next(iter(runner.templates.values()))
        assert runner.run("pinned").values == ((1,),)
        # The attack: new source and, in case the importer looked, bytecode Python would prefer.
        (folder / "main.py").write_text("def run(ctx):\n    return [666]\n")
        (folder / "main").mkdir()
        (folder / "main" / "__init__.pyc").write_bytes(_compiled(tmp_path, 667))
        result = runner.run("pinned")
        assert result.values == ((1,),)
        assert result.template.template_id == template.template_id
    with pytest.raises(ManifestError):  # and reloading the folder refuses the bytecode
        load_template(folder)


def test_run_templateReadsItsOwnDataFromMemory(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / "data").mkdir()
    (folder / "data" / "answer.txt").write_text("41")
    (folder / "main.py").write_text("def run(ctx):\n    return [int(ctx.file('data/answer.txt')) + 1]\n")
    with TemplateRunner(folder) as runner:
        (folder / "data" / "answer.txt").write_text("665")  # too late: the bundle was read at load
        assert runner.run("pinned").values == ((42,),)


def test_run_jobHoldsNoOtherTemplatesCode() -> None:
    with TemplateRunner(TEMPLATES_DIR / "median-price", TEST_TEMPLATES / "hostile-other-bundles") as runner:
        assert runner.run("median-price", [[1, 100], 0]).reason.endswith("widen max_deviation_bps")  # it is loaded
        assert runner.run("hostile-other-bundles").values == ("nothing",)


def test_loadTemplate_fileSwappedForALinkWhileReading_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _bundle(tmp_path)
    (tmp_path / "secret.txt").write_text("outside the bundle")
    (folder / "data.txt").symlink_to(tmp_path / "secret.txt")
    real_stat = os.stat

    def stale_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        """What the walk saw a moment before the swap: a regular file."""
        return real_stat(folder / "main.py") if path == "data.txt" else real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stale_stat)
    with pytest.raises(ManifestError, match="data.txt cannot be read as a regular file"):
        load_template(folder)
