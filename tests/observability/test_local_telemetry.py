"""Telemetry on a laptop: the embedded-server commands honour the same ``OTEL_*``, Prometheus
and log settings as ``asm worker``, and the documented console recipe shows one run's trace.

Real subprocesses (the ``asm`` CLI and the recipe exactly as docs/telemetry-local.md has it),
real embedded Temporal servers, loopback ports only.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import urllib.request
import uuid
from pathlib import Path

from agent_session_manager.worker.dev_server import free_port
from tests.client.test_cli import ASM, REPO, asm

RECIPE = REPO / "docs" / "telemetry-local.md"


def _local_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus our and OTel's settings, with the embedded server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "OTEL_"))}
    return env | {
        "PYTHONPATH": str(REPO),
        "ANTHROPIC_API_KEY": "",
        "ASM_HOME": str(home),
        "ASM_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'asm.db'}",
        "COLUMNS": "200",
        **extra,
    }


async def test_console_traces_on_the_embedded_demo_print_spans_and_exit_0(tmp_path: Path) -> None:
    # The embedded server used to inherit OTEL_TRACES_EXPORTER and exit at start on `console`.
    code, out, err = await asm(
        "demo",
        "--turns",
        "1",
        cwd=tmp_path,
        timeout=180,
        env=_local_env(tmp_path / ".asm", OTEL_TRACES_EXPORTER="console"),
    )
    assert code == 0, err[-3000:]
    assert "session completed: 1 runs" in out
    assert '"name": "chat mock-1"' in out  # the provider call's span, printed by the exporter
    assert '"name": "StartWorkflowUpdate:submit_run"' in out


async def test_the_documented_console_recipe_prints_one_runs_trace(tmp_path: Path) -> None:
    (code_block,) = re.findall(r"```python\n(.*?)```", RECIPE.read_text(), re.S)
    script = tmp_path / "recipe.py"
    script.write_text(code_block)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,
        env=_local_env(tmp_path / ".asm"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()[-3000:]
    lines = out.decode().splitlines()
    assert re.fullmatch(r"trace 0x[0-9a-f]{32}: \d+ spans", lines[0]), lines[0]
    tree = [(len(line) - len(line.lstrip()), line.strip().split("  (")[0]) for line in lines[1:]]
    assert tree[0] == (0, "StartWorkflowUpdate:submit_run")  # the client's call is the root
    names = [name for _, name in tree]
    activity = names.index("RunActivity:stream_provider")
    chat = names.index("chat mock-1")
    assert chat == activity + 1 and tree[chat][0] > tree[activity][0]  # its child
    assert "asm.store.append" in names[chat + 1 :]


async def _read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    while marker not in "".join(seen):
        line = await stream.readline()
        if not line:
            raise AssertionError(f"output ended before {marker!r}: {''.join(seen)}")
        seen.append(line.decode())


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return str(response.read().decode())


def _pollers(task_queue: str) -> re.Pattern[str]:
    return re.compile(rf'temporal_num_pollers\{{[^}}]*task_queue="{task_queue}"')


async def _metrics_with_pollers(url: str, task_queue: str) -> str:
    """The endpoint's text once the worker's pollers report (they start just after ready)."""
    text = ""
    for _ in range(150):
        text = await asyncio.to_thread(_get, url)
        if _pollers(task_queue).search(text):
            break
        await asyncio.sleep(0.2)
    return text


async def test_asm_dev_applies_the_prometheus_log_and_otel_settings_to_its_worker(
    tmp_path: Path,
) -> None:
    port, ui_port, metrics_port = free_port(), free_port(), free_port()
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    env = _local_env(
        tmp_path / ".asm",
        ASM_TASK_QUEUE=task_queue,
        ASM_PROMETHEUS_BIND=f"127.0.0.1:{metrics_port}",
        ASM_LOG_FORMAT="json",
        ASM_LOG_LEVEL="INFO",
        OTEL_TRACES_EXPORTER="console",  # must reach our worker, not the Go server
    )
    proc = await asyncio.create_subprocess_exec(
        *ASM,
        "dev",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stdout: list[str] = []
    try:
        await asyncio.wait_for(_read_until(proc.stdout, "Ctrl-C to stop.", stdout), 120)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        metrics = await _metrics_with_pollers(url, task_queue)
        proc.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "stopping…" in rest.decode()
    # The Temporal SDK's metrics of this worker, from the runtime `asm worker` would use.
    assert _pollers(task_queue).search(metrics), metrics
    # Every log line is JSON (ASM_LOG_FORMAT) at INFO (ASM_LOG_LEVEL), and tracing is on.
    records = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert "telemetry: traces=console metrics=none" in [r["message"] for r in records]
