"""The documentation cannot rot: the site builds without a warning, and every runnable
Python block of the README and the guides runs, unmodified, against a real Temporal server.

Convention (stated in ``docs/index.md``): a fenced ``python`` block is a complete script and is
run here; a block whose info string says ``sketch`` (```` ```python title="sketch: …" ````) is
a fragment, shown but not run. Each script runs as a subprocess in a fresh directory with the
settings a worker and ``asm`` read: ``ASM_TEMPORAL_ADDRESS`` (the test session's dev server),
``ASM_DATABASE_URL`` (this test's SQLite store, migrated), ``ASM_TASK_QUEUE`` (this test's
queue, served by a worker running in the test) and ``ASM_NAMESPACE``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.store import EventStore

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

#: Variables of the developer's shell that would point a script elsewhere than this test's
#: server and store, or change what it prints (exporters, provider credentials).
_FOREIGN = re.compile(r"^(ASM_|TEMPORAL_|OTEL_|ANTHROPIC_|OPENAI_)")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its info string and its text."""

    path: Path
    line: int
    info: str
    code: str

    @property
    def language(self) -> str:
        return self.info.split(maxsplit=1)[0] if self.info.strip() else ""

    @property
    def runnable(self) -> bool:
        return self.language == "python" and "sketch" not in self.info

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced code block of a Markdown file (fences may be indented, as in lists)."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        found.append(Block(path, i + 1, opening["info"].strip(), "\n".join(body) + "\n"))
        i = j + 1
    return found


RUNNABLE = [b for path in DOCUMENTS for b in blocks(path) if b.runnable]


def test_the_readme_and_the_guides_have_runnable_scripts() -> None:
    """The extraction finds what the convention promises (else the test below runs nothing)."""
    where = {b.path.name for b in RUNNABLE}
    assert "README.md" in where
    assert {"getting-started.md", "providers.md", "testing.md"} <= where


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
async def test_python_block_runs(
    block: Block,
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    run_worker: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """The block, as a script, exits 0 against the dev server, a worker and a migrated store."""
    script = tmp_path / "script.py"
    script.write_text(block.code, encoding="utf-8")
    work = tmp_path / "cwd"  # nothing the script writes lands in the checkout
    work.mkdir()
    environ = {k: v for k, v in os.environ.items() if not _FOREIGN.match(k)}
    environ.update(
        ASM_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        ASM_NAMESPACE=env.client.namespace,
        ASM_TASK_QUEUE=task_queue,
        # The store fixture's database (tests/conftest.py), migrated.
        ASM_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}",
        ASM_HOME=str(tmp_path / ".asm"),
        PYTHONUNBUFFERED="1",
    )
    async with run_worker():
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=work,
            env=environ,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            # A hang guard, not a performance claim: a stuck script fails instead of blocking.
            output, _ = await asyncio.wait_for(proc.communicate(), 180)
        except TimeoutError:
            proc.kill()
            output, _ = await proc.communicate()
            pytest.fail(f"{block.name} did not finish in 180 s:\n{output.decode()}")
    assert proc.returncode == 0, f"{block.name} exited {proc.returncode}:\n{output.decode()}"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed: pip install -e '.[docs]' (make venv installs it)",
)
def test_site_builds_strict_without_warnings(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (what ``make docs`` runs) exits 0 and prints no warning."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    assert warnings == [], log
    assert (tmp_path / "reference" / "client" / "index.html").is_file()
