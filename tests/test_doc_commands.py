"""Every `coprocessor ...` command the README and docs show names a command that exists and only
options it takes: a renamed option or command fails here, not in a reader's shell."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from coprocessor.cli import main
from coprocessor.dev.toolchain import PROJECT_ROOT

_DOCS = [
    PROJECT_ROOT / "README.md",
    *sorted((PROJECT_ROOT / "docs").glob("*.md")),
    *sorted((PROJECT_ROOT / "templates").glob("*/README.md")),
]


def _commands() -> list[tuple[str, str]]:
    """(where, command line) for each `coprocessor` invocation inside the docs' code blocks."""
    found = []
    for path in _DOCS:
        in_block, pending = False, ""
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block:
                continue
            line = pending + line.split("  #")[0].rstrip()
            pending = line[:-1] + " " if line.endswith("\\") else ""
            if pending:
                continue
            for part in re.split(r"[;|]|\$\(", line):
                match = re.search(r"(?:^|\s|/)coprocessor(\s+[a-z].*)$", part.strip().removeprefix("$ "))
                if match:
                    found.append((f"{path.relative_to(PROJECT_ROOT)}:{number}", match.group(1).strip().rstrip(")")))
    return found


@pytest.mark.parametrize(("where", "line"), _commands())
def test_docCommand_namesACommandAndOptionsThatExist(where: str, line: str) -> None:
    words = shlex.split(line)
    command: click.Command = main
    options = {o for p in main.params for o in [*p.opts, *p.secondary_opts]}
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.commands.get(words[0])
        if sub is None:
            if options & {words[0]}:
                break
            pytest.fail(f"{where}: `coprocessor {line}`: no command {words[0]!r} in `{command.name}`")
        command, words = sub, words[1:]
        options |= {o for p in command.params for o in [*p.opts, *p.secondary_opts]}
    if command.context_settings.get("ignore_unknown_options"):
        return  # passes its options through (`enclave serve`, `template test`)
    for word in words:
        if word.startswith("-") and word != "-":
            name = word.split("=")[0]
            assert name in options, f"{where}: `coprocessor {line}`: {command.name} takes no {name}"


def test_docCommands_areFound() -> None:
    assert len(_commands()) > 25  # the extraction itself works
