"""``asm keys`` and ``asm serve`` as a user runs them: real subprocesses, a real dev server
and store, ``-o json`` output, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx2 as httpx
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.store import upgrade
from tests.client.test_cli import ASM, REPO, asm


async def test_keys_create_list_revoke_as_json(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    await upgrade(url)
    env = {"ASM_DATABASE_URL": url}
    code, out, err = await asm(
        "keys", "create", "--tenant", "acme", "--name", "ci", "-o", "json", env=env
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["tenant"] == "acme" and created["key"].startswith("asm_") and created["active"]
    code, out, err = await asm("keys", "ls", "-o", "json", env=env)
    assert code == 0, err
    listed = json.loads(out)
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert created["key"] not in out  # a listing never shows a secret
    code, out, err = await asm("keys", "revoke", created["key_id"], "-o", "json", env=env)
    assert code == 0 and json.loads(out)["active"] is False
    code, out, err = await asm("keys", "revoke", "nope", "-o", "json", env=env)
    assert code == 1 and json.loads(err)["error"]["code"] == "not_found"
    code, out, err = await asm("keys", "create", "--tenant", "no spaces", "-o", "json", env=env)
    assert code == 1 and json.loads(err)["error"]["code"] == "validation_error"
    code, out, _ = await asm("keys", "create", "--help")
    assert code == 0 and "--tenant" in out


async def test_serve_answers_health_and_streams_over_the_cli(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    await upgrade(url)
    address = env.client.service_client.config.target_host
    environ = {
        **os.environ,
        "ASM_DATABASE_URL": url,
        "ASM_TEMPORAL_ADDRESS": address,
        "ASM_TASK_QUEUE": "tq-serve-cli",
    }
    proc = await asyncio.create_subprocess_exec(
        *ASM,
        "serve",
        "--port",
        "0",
        "-o",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        started = json.loads(line)
        assert started["url"].startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=started["url"], timeout=30) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            assert (await http.get("/v1/sessions")).status_code == 401
            page = await http.get("/ui/")
            assert page.status_code == 200 and "<title>agent-session-manager" in page.text
            assert (await http.get("/ui/app.js")).status_code == 200
            schema = (await http.get("/openapi.json")).json()
            assert "/v1/sessions/{session_id}/events" in schema["paths"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode in (0, -15), (await proc.stderr.read()).decode()  # type: ignore[union-attr]
