"""What the README and the guides name exists: every ``asm`` command and option they show, every
``ASM_*``/``OTEL_*`` variable they mention, and the error taxonomy exactly as the code has it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer

from agent_session_manager.cli.app import app
from agent_session_manager.cli.runs import _StartByDefault as DEFAULT_TO_START
from agent_session_manager.core.errors import CODES
from tests.docs.test_docs import DOCUMENTS, REPO, blocks

_INLINE = re.compile(r"`(asm [^`]+)`")
_VARIABLE = re.compile(r"\b(?:ASM|OTEL)_[A-Z_]+\b")


def _asm_commands() -> list[tuple[str, str]]:
    """``(where, command line)`` for every ``asm …`` in shell blocks and inline code."""
    found: list[tuple[str, str]] = []
    for path in DOCUMENTS:
        name = str(path.relative_to(REPO))
        for block in blocks(path):
            if block.language not in ("bash", "sh", "console"):
                continue
            for line in block.code.splitlines():
                found += [(name, c) for c in _commands_in(line.split(" #")[0])]
        for span in _INLINE.findall(path.read_text(encoding="utf-8")):
            found += [(name, c) for c in _commands_in(span)]
    return found


def _commands_in(text: str) -> list[str]:
    # Leading variable assignments and pipes separate commands: `X=1 asm a | asm b`.
    return [m.group(1).strip() for m in re.finditer(r"(?:^|\|\s*|\s)(asm\s[^|]*)", text)]


COMMANDS = _asm_commands()


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote in prose: whitespace will do
        return command.split()


@pytest.mark.parametrize("where,command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_asm_options_exist(where: str, command: str) -> None:
    """The subcommands and options an ``asm`` line uses are the CLI's own."""
    words = [w for w in _words(command)[1:] if w != "…"]  # "…" is prose: "asm session …"
    # Typer vendors its own click: groups are told apart by their ``commands``.
    cli: Any = typer.main.get_command(app)
    while hasattr(cli, "commands") and words:
        if words[0] in cli.commands:
            cli = cli.commands[words.pop(0)]
        elif isinstance(cli, DEFAULT_TO_START):  # `asm run PROMPT …` is `asm run start …`
            cli = cli.commands["start"]
        else:
            break
    if hasattr(cli, "commands") and words and not words[0].startswith("-"):
        pytest.fail(f"{where}: `{command}` names no command of `asm {cli.name}`")
    options = {o for p in cli.params for o in (*p.opts, *p.secondary_opts)}
    # A bare `-` is an argument (standard input), not an option.
    flags = {w.strip("[]").split("=")[0] for w in words if w.strip("[]").startswith("-")} - {"-"}
    assert flags <= options, f"{where}: `{command}` uses {sorted(flags - options)}"


def test_documented_variables_are_used() -> None:
    """Every ``ASM_*``/``OTEL_*`` name in the docs appears in a tracked non-Markdown file."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    sources = "".join(
        (REPO / f).read_text(encoding="utf-8", errors="ignore")
        for f in tracked
        if not f.endswith(".md") and (REPO / f).is_file()
    )
    mentioned = {v for path in DOCUMENTS for v in _VARIABLE.findall(path.read_text("utf-8"))}
    assert mentioned, "the pattern found no variable at all"
    assert {v for v in mentioned if v not in sources} == set()


def test_the_error_guide_lists_the_taxonomy_exactly() -> None:
    """docs/errors.md's table has every code under its category, and nothing else."""
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    listed: dict[str, set[str]] = {}
    for category, codes in re.findall(r"^\| (\w+) \(`\w+`\) \| (.+) \|$", text, re.MULTILINE):
        listed[category] = set(re.findall(r"`(\w+)`", codes))
    expected: dict[str, set[str]] = {}
    for code, (category, _) in CODES.items():
        expected.setdefault(category, set()).add(code)
    assert listed == expected


def test_commands_are_found() -> None:
    """The scan sees the commands the README shows (else the checks above check nothing)."""
    assert any(c.startswith("asm session start") for _, c in COMMANDS)
    assert any(Path(w).name == "README.md" for w, _ in COMMANDS)
