"""The `asm` CLI as a user runs it: real subprocesses, real server, reliable exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from agent_session_manager import SessionClient
from agent_session_manager.store import EventStore

ASM = [sys.executable, "-m", "agent_session_manager.cli"]
REPO = Path(__file__).resolve().parents[2]


async def asm(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,  # noqa: ASYNC109 - a subprocess deadline, so a hang fails fast
    stdin: bytes | None = None,
    under: list[str] | None = None,
) -> tuple[int, str, str]:
    """``asm *args`` (run by the command ``under``, when given); (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *(under or []),
        *ASM,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd or REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["dev"],
        ["worker"],
        ["demo"],
        ["session"],
        ["session", "start"],
        ["session", "show"],
        ["session", "ls"],
        ["session", "cancel"],
        ["session", "complete"],
        ["run"],
        ["run", "start"],
        ["run", "ls"],
        ["run", "show"],
        ["run", "cancel"],
        ["run", "wait"],
        ["events"],
        ["audit"],
        ["setup"],
        ["db", "upgrade"],
        ["approvals"],
        ["approvals", "ls"],
        ["approvals", "approve"],
        ["approvals", "deny"],
        ["limits"],
        ["usage"],
        ["serve"],
        ["keys"],
        ["keys", "create"],
        ["keys", "ls"],
        ["keys", "revoke"],
    ],
)
async def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = await asm(*command, "--help")
    assert code == 0
    assert "Usage" in out
    if command and command[-1] not in ("session", "run", "db", "approvals", "keys"):  # groups
        assert "--output" in out and "text|json" in out
        assert "table|json" not in out  # one spelling of the format everywhere
        assert "--json" not in out  # the old flag is a hidden alias at most


@pytest.mark.parametrize(
    ("command", "connects"),
    [
        (["approvals", "ls"], True),
        (["approvals", "approve"], True),
        (["approvals", "deny"], True),
        (["serve"], True),
        (["session", "show"], True),
        (["keys", "create"], False),
        (["keys", "ls"], False),
        (["keys", "revoke"], False),
        (["usage"], False),
        (["limits"], False),
    ],
)
async def test_commands_that_talk_to_temporal_take_address_and_namespace(
    command: list[str], connects: bool
) -> None:
    """The Temporal options appear exactly on the commands that connect (store-only commands
    work during a Temporal outage and take no address)."""
    code, out, _ = await asm(*command, "--help")
    assert code == 0
    assert ("--address" in out and "--namespace" in out) is connects, out


async def test_usage_error_exits_2() -> None:
    code, _, err = await asm("run", "hello")
    assert code == 2
    assert "Missing option '--session'" in err
    assert len(err.strip().splitlines()) == 1


async def test_shell_completion_is_available() -> None:
    # Typer picks the shell by walking this process's ancestors (shellingham), ignoring any
    # argument: run it from bash, as a user would, or the result depends on what started
    # pytest (no shell ancestor at all: "Shell not supported"). bash stays the parent: it
    # cannot exec the command in place, as a command follows.
    code, out, err = await asm("--show-completion", under=["bash", "-c", '"$@"; exit $?', "bash"])
    assert code == 0, err
    assert "_ASM_COMPLETE=complete_bash" in out
    code, out, _ = await asm(
        env={"_ASM_COMPLETE": "complete_bash", "COMP_WORDS": "asm ru", "COMP_CWORD": "1"}
    )
    assert code == 0
    assert out.split() == ["run"]


async def test_no_server_is_a_typed_error_with_next_step(tmp_path: Path) -> None:
    code, _, err = await asm(
        "session",
        "show",
        "ses_x",
        env={
            "ASM_TEMPORAL_ADDRESS": "127.0.0.1:1",
            "ASM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db",
        },
    )
    assert code == 75  # EX_TEMPFAIL: the same command may work once the server is up
    assert "temporal_unavailable" in err
    assert "asm dev" in err


def cli_env(env: WorkflowEnvironment, store: EventStore, task_queue: str) -> dict[str, str]:
    return {
        "ASM_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "ASM_DATABASE_URL": store.url,
        "ASM_TASK_QUEUE": task_queue,
    }


async def test_session_run_events_show_and_cancel_through_the_cli(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    e = cli_env(env, store, task_queue)
    async with run_worker():
        code, sid, err = await asm("session", "start", "--agent", "cli", "--tag", "x", env=e)
        assert code == 0, err
        sid = sid.strip()
        assert sid.startswith("ses_")
        code, out, err = await asm("run", "hello there", "--session", sid, "--follow", env=e)
        assert code == 0, err
        assert "hello there" in out
        assert "completed" in err
        code, out, _ = await asm("events", sid, "-o", "json", env=e)
        assert code == 0
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert [ev["seq"] for ev in events] == list(range(1, len(events) + 1))
        assert {"session_created", "run_started", "message_streamed", "run_completed"} <= {
            ev["type"] for ev in events
        }
        code, out, _ = await asm("session", "show", sid, env=e)
        assert code == 0 and "active" in out and "completed" in out
        code, out, _ = await asm("session", "cancel", sid, env=e)
        assert code == 0 and "cancelled" in out
        code, _, err = await asm("run", "again", "--session", sid, env=e)
    assert code == 1
    assert "invalid_transition" in err


async def test_run_reads_a_prompt_of_any_size_from_stdin(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    e = cli_env(env, store, task_queue)
    prompt = "a long question " * 200_000  # 3.2 MB: only by reference does it fit Temporal
    script = json.dumps({"steps": [{"type": "text", "text": "short answer"}]})
    async with run_worker():
        code, sid, err = await asm("session", "start", "--mock-script", script, env=e)
        assert code == 0, err
        sid = sid.strip()
        code, out, err = await asm("run", "-", "--session", sid, env=e, stdin=prompt.encode())
        assert code == 0, err
        assert out.strip() == "short answer"
        conversation = await store.conversation(sid, before_turn=2)
        assert conversation[0].content == prompt


async def test_session_status_commands_move_the_session_and_ls_finds_it(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    e = cli_env(env, store, task_queue)
    async with run_worker():
        code, sid, err = await asm("session", "start", "--no-activate", env=e)
        assert code == 0, err
        sid = sid.strip()
        assert "pending" in err
        for command, status in (
            ("activate", "active"),
            ("pause", "paused"),
            ("resume", "active"),
            ("complete", "completed"),
        ):
            code, out, err = await asm("session", command, sid, "--reason", "ops", env=e)
            assert code == 0, err
            assert f"status={status}" in out
        listed = ""
        for _ in range(20):  # visibility is eventually consistent
            code, listed, err = await asm("session", "ls", "--status", "completed", env=e)
            assert code == 0, err
            if sid in listed:
                break
            await asyncio.sleep(0.5)
    assert sid in listed


async def test_events_follow_streams_tokens_while_the_run_is_going(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    run_worker: Any,
    tmp_path: Path,
) -> None:
    e = cli_env(env, store, task_queue)
    script = json.dumps(
        {"steps": [{"type": "text", "text": "abcdefghij" * 5, "chunk_size": 5, "delay_ms": 80}]}
    )
    async with run_worker():
        code, sid, err = await asm("session", "start", "--mock-script", script, env=e)
        assert code == 0, err
        sid = sid.strip()
        follower = await asyncio.create_subprocess_exec(
            *ASM,
            "events",
            sid,
            "--follow",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **e},
            cwd=REPO,
        )
        assert follower.stdout is not None
        code, _, err = await asm("run", "go", "--session", sid, "--no-wait", env=e)
        assert code == 0, err
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not any(ev["type"] == "run_completed" for ev in seen):
                line = await follower.stdout.readline()
                seen.append(json.loads(line))
        follower.terminate()
        await follower.wait()
    types = [ev["type"] for ev in seen]
    deltas = [i for i, t in enumerate(types) if t == "message_streamed"]
    assert len(deltas) > 1  # tokens arrived in pieces, as they were produced
    assert deltas[0] < types.index("run_completed")


async def test_demo_runs_end_to_end_and_exits_0(tmp_path: Path) -> None:
    code, out, err = await asm(
        "demo",
        "--turns",
        "2",
        cwd=tmp_path,
        timeout=120,
        env={"ASM_TEMPORAL_ADDRESS": "", "ANTHROPIC_API_KEY": "", "PYTHONPATH": str(REPO)},
    )
    assert code == 0, err
    assert "session completed: 2 runs" in out
    assert "Temporal UI: http://127.0.0.1:" in out
    assert (tmp_path / ".asm" / "asm.db").exists()


async def test_worker_refuses_an_out_of_date_schema_and_says_what_to_run(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    code, _, err = await asm(
        "worker", env={"ASM_TEMPORAL_ADDRESS": "127.0.0.1:1", "ASM_DATABASE_URL": url}
    )
    assert code == 1
    assert "asm db upgrade" in err
    code, out, err = await asm("db", "upgrade", env={"ASM_DATABASE_URL": url})
    assert code == 0, err
    assert "revision" in out


async def test_ctrl_c_with_cancel_on_interrupt_cancels_the_run(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    e = cli_env(env, store, task_queue)
    script = json.dumps(
        {"steps": [{"type": "text", "text": "abcde" * 200, "chunk_size": 5, "delay_ms": 500}]}
    )
    async with run_worker():
        code, sid, err = await asm("session", "start", "--mock-script", script, env=e)
        assert code == 0, err
        sid = sid.strip()
        proc = await asyncio.create_subprocess_exec(
            *ASM,
            "run",
            "go",
            "--session",
            sid,
            "--follow",
            "--cancel-on-interrupt",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200", **e},
            cwd=REPO,
        )
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.read(5), 120) == b"abcde"  # streaming
        proc.send_signal(signal.SIGINT)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 120)
        stderr = err_bytes.decode()
        view = await SessionClient(env.client, store, task_queue=task_queue).describe(sid)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: cancelling run" in stderr
    assert [r.status.value for r in view.runs] == ["cancelled"]
    assert f"run {view.runs[0].run_id} cancelled" in stderr


async def test_limits_shows_configuration_held_slots_and_cooldowns(
    store: EventStore, tmp_path: Path
) -> None:
    import time

    from agent_session_manager.store import SlotRequest

    now = time.time()
    for i, tenant in enumerate(["acme", "acme", "zed"]):
        await store.acquire_slot(
            SlotRequest(
                lease_id=f"run:r{i}", kind="run", holder="w", scopes={"runs": 2}, tenant=tenant
            ),
            now=now + i,
            expires_at=now + 600,
        )
    await store.set_cooldown("anthropic:abc/claude-x", now + 300, "provider_rate_limited")
    env = {"ASM_DATABASE_URL": store.url, "ASM_LIMITS": '{"max_runs": 2}'}
    code, out, err = await asm("limits", "-o", "json", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert report["limits"]["max_runs"] == 2
    assert report["runs"] == [
        {
            "scope": "runs",
            "limit": 2,
            "held": 2,
            "waiting": 1,
            "tenants": {"acme": [2, 0], "zed": [0, 1]},  # first come while free
        }
    ]
    (rate,) = report["rates"]
    assert rate["key"] == "anthropic:abc/claude-x" and 290 < rate["cooldown_seconds"] <= 300
    code, text, err = await asm("limits", env=env)
    assert code == 0, err
    assert "max_runs=2" in text and "zed:0/1" in text and "provider_rate_limited" in text
    # Blank is none (compose passes `${ASM_LIMITS:-}`): no limits, not an error.
    code, text, err = await asm("limits", env={**env, "ASM_LIMITS": "  "})
    assert code == 0, err
    assert "no limits configured" in text


async def test_limits_with_a_bad_configuration_says_which(tmp_path: Path) -> None:
    env = {"ASM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    code, _, err = await asm("limits", env={**env, "ASM_LIMITS": '{"max_runs": -3}'})
    assert code == 1 and "validation_error" in err and "ASM_LIMITS" in err
    code, _, err = await asm("limits", env={**env, "ASM_LIMITS": "{not json"})
    assert code == 1 and "validation_error" in err and "ASM_LIMITS" in err
    bad = tmp_path / "limits.toml"
    bad.write_text("max_runs = [")
    code, _, err = await asm("limits", env={**env, "ASM_LIMITS_FILE": str(bad)})
    assert code == 1 and "validation_error" in err and "ASM_LIMITS_FILE" in err
