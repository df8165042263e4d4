"""Template text is inert: escaped wherever it is shown or logged, reasons valid UTF-8, log bytes capped per job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from coprocessor.testing import TemplateRunner
from coprocessor_enclave.errors import ManifestError
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import load_template
from coprocessor_enclave.text import inert, utf8_prefix

from .conftest import TEST_TEMPLATES

TEMPLATE = TEST_TEMPLATES / "hostile-escape-text"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcödé", "plain text, ünïcödé"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("line\r\nforged", "line\\x0d\\x0aforged"),
        ("right\u202eleft", "right\\u202eleft"),
        ("C:\\x1b", "C:\\\\x1b"),  # a backslash in the text cannot pass for an escape of ours
        ("\x9b31m", "\\x9b31m"),  # the one-byte CSI
    ],
)
def test_inert_escapesWhatATerminalActsOn(text: str, shown: str) -> None:
    assert inert(text) == shown


def test_utf8Prefix_cutsBetweenCharacters() -> None:
    text = "a" + "é" * 200
    cut = utf8_prefix(text, 256)
    assert len(cut) == 255 and cut.decode("utf-8") == text[:128]
    assert utf8_prefix("\udc80x", 10) == b"?x"  # a lone surrogate cannot make the bytes invalid


def test_run_hostileText_reasonIsValidUtf8AndInert_logsEscapedAndCapped(capfd: pytest.CaptureFixture[str]) -> None:
    with TemplateRunner(TEMPLATE) as runner:
        result = runner.run("hostile-escape-text", [True])
    assert result.status == Status.INVALID_INPUT
    assert len(result.output) <= 256
    reason = result.output.decode("utf-8")  # strict: raises on a character cut in half
    assert reason.startswith("aé") and "\x1b" not in reason and "\n" not in reason
    log = capfd.readouterr().err
    assert "\x1b" not in log and "\u202e" not in log
    assert "print \\x1b]0;owned\\x07" in log and "log \\x1b]0;owned" in log  # shown, escaped, on its own line
    assert "raw " not in log  # bytes written to the descriptors reach no log
    lines = [line for line in log.splitlines() if line.startswith("template hostile-escape-text")]
    assert not any(line.startswith("enclave: key rotated") for line in log.splitlines())  # every line says whose it is
    assert "flood 01999" not in log and "[log limit of 2048 bytes reached" in log
    assert sum(len(line) for line in lines) < 2048 + 200 * len(lines)  # the run's budget, plus prefixes


def test_cli_templateRun_outputAndReasonEscaped() -> None:
    for flag, status in (("true", "INVALID_INPUT"), ("false", "OK")):
        shown = subprocess.run(
            [sys.executable, "-m", "coprocessor", "template", "run", str(TEMPLATE), "--input", f"[{flag}]"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.stdout.startswith(status), shown.stdout + shown.stderr
        assert "\x1b" not in shown.stdout + shown.stderr
        assert status == "INVALID_INPUT" or "\\x1b]52;c;" in shown.stdout


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('version = "1.0\\u001b]0;owned\\u0007"', "version '1.0\\x1b]0;owned\\x07' must be letters, digits"),
        ('version = "1.0\\nINFO forged"', "must be letters, digits"),
        ('description = "fine\\u001b[2J"', "description must be one line of printable text"),
    ],
)
def test_loadTemplate_manifestTextShownToOperators_mustBePrintable(tmp_path: Path, line: str, message: str) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    key = line.split(" = ")[0]
    manifest = 'name = "t"\nversion = "1.0.0"\nentry = "main:run"\ninputs = []\noutputs = ["uint8"]\n'
    manifest = "\n".join(line if row.startswith(key) else row for row in manifest.splitlines()) if key == "version" else manifest + line
    (folder / "template.toml").write_text(manifest + "\n")
    (folder / "main.py").write_text("def run(ctx):\n    return 1\n")
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_template(folder)
