"""Every script in ``examples/`` runs, unmodified, against a real Temporal server: each as a
subprocess with the settings a user's shell would have (``ASM_TEMPORAL_ADDRESS``,
``ASM_DATABASE_URL``, ``ASM_TASK_QUEUE``, ``ASM_NAMESPACE``), served by a real worker with the
mock provider (no API key), checked by exit code and output.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from agent_session_manager import SessionClient
from agent_session_manager.store import EventStore

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
_FOREIGN = re.compile(r"^(ASM_|TEMPORAL_|OTEL_|ANTHROPIC_|OPENAI_)")
#: A hang guard, not a performance claim.
TIMEOUT = 180.0

COVERED = {
    "multi_turn.py",
    "follow_events.py",
    "cancel_run.py",
    "custom_provider/run_shout.py",
    "custom_provider/shout_provider.py",
}


def settings_env(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, **extra: str
) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not _FOREIGN.match(k)}
    return {
        **environ,
        "ASM_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "ASM_NAMESPACE": env.client.namespace,
        "ASM_TASK_QUEUE": task_queue,
        "ASM_DATABASE_URL": store.url,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
        **extra,
    }


async def run_example(
    script: str, environ: dict[str, str], *args: str, stdin: str | None = None, cwd: Path
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        cwd=cwd,
        env=environ,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else b""), TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
        pytest.fail(f"{script} did not finish in {TIMEOUT:.0f} s:\n{output.decode()}")
    assert proc.returncode is not None
    text = output.decode()
    assert "Traceback" not in text, text
    return proc.returncode, text


def test_every_example_is_run_here() -> None:
    found = {
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.rglob("*.py")
        if not p.name.startswith("_") and "__pycache__" not in p.parts
    }
    assert found == COVERED


async def test_multi_turn_with_the_mock_provider(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    run_worker: Callable[..., Any],
    tmp_path: Path,
) -> None:
    environ = settings_env(env, store, task_queue)
    async with run_worker():
        code, output = await run_example(
            "multi_turn.py", environ, "--mock", stdin="Hello!\nWhat did I say?\n\n", cwd=tmp_path
        )
    assert code == 0, output
    assert output.count("[completed, ") == 2
    assert "session completed: 2 turns" in output


async def test_follow_events_from_a_second_process(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    run_worker: Callable[..., Any],
    client: SessionClient,
    tmp_path: Path,
) -> None:
    environ = settings_env(env, store, task_queue)
    async with run_worker():
        view = await client.start_session(agent_id="follower-test", provider="mock")
        sid = view.session_id
        follower = asyncio.create_task(run_example("follow_events.py", environ, sid, cwd=tmp_path))
        result = await client.run(sid, "say something")
        await client.complete_session(sid)
        code, output = await asyncio.wait_for(follower, TIMEOUT)
    assert result.status.value == "completed"
    assert code == 0, output
    types = [line.split()[1] for line in output.splitlines() if line.strip()]
    assert types[0] == "session_created"
    assert types[-1] == "session_completed"
    assert {"run_started", "message_streamed", "run_completed"} <= set(types)


async def test_cancel_a_run(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    run_worker: Callable[..., Any],
    tmp_path: Path,
) -> None:
    environ = settings_env(env, store, task_queue)
    async with run_worker():
        code, output = await run_example("cancel_run.py", environ, cwd=tmp_path)
    assert code == 0, output
    assert "streaming: 'tick '" in output
    assert "cancel_run -> cancelled" in output
    assert "run cancelled" in output
    assert "next run completed" in output


async def test_a_custom_provider_installed_and_registered_as_the_docs_say(
    env: WorkflowEnvironment, store: EventStore, tmp_path: Path
) -> None:
    """``pip install`` the example package (its entry point registers ``shout``), run
    ``asm worker`` with it installed, and use it from a session."""
    site = tmp_path / "site"
    # Built from a copy: setuptools leaves build/ next to the sources it builds.
    package = tmp_path / "custom_provider"
    shutil.copytree(EXAMPLES / "custom_provider", package, ignore=shutil.ignore_patterns("build"))
    install = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    queue = f"shout-{tmp_path.name}"
    environ = settings_env(env, store, queue, PYTHONPATH=f"{site}{os.pathsep}{REPO}")
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_session_manager.cli",
        "worker",
        cwd=tmp_path,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert worker.stdout is not None
        ready = await asyncio.wait_for(worker.stdout.readline(), TIMEOUT)
        assert b"worker on" in ready, ready
        code, output = await run_example(
            "custom_provider/run_shout.py", environ, "durable", "agents", cwd=tmp_path
        )
    finally:
        worker.terminate()
        await worker.wait()
    assert code == 0, output
    assert "completed: DURABLE AGENTS" in output
