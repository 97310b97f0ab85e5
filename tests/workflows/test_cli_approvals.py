"""Issue 17, item 4: an agent CLI's approval request goes to a human through the run.

The real Codex CLI (``codex app-server``) runs against the Responses API fake; the model asks
for an escalated command, the CLI asks for approval, and the run lists it and takes the same
``approve`` / ``deny`` updates as a tool approval (see :mod:`workflows.cli_approvals`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.tools import PendingApproval, action_digest, sha256_of
from agent_session_manager.store import EventStore
from tests.fakes import anthropic_server as anthropic
from tests.fakes import openai_responses_server as openai
from tests.workflows.test_agent_cli_runs import (
    ANTHROPIC_KEY,
    claude_secrets,
    claude_spec,
    codex_secrets,
    codex_spec,
    needs_claude,
    needs_codex,
    of_type,
    run_events,
)


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[anthropic.AnthropicFake]:
    async with anthropic.AnthropicFake(api_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture
async def openai_fake() -> AsyncIterator[openai.OpenAIResponsesFake]:
    async with openai.OpenAIResponsesFake() as server:
        yield server


def escalated_command(fake: openai.OpenAIResponsesFake) -> None:
    """The model asks to run a command outside the read-only sandbox, then ends its turn."""
    fake.script(
        openai.turn(
            openai.function_call(
                "exec_command",
                {
                    "cmd": "touch made-by-command",
                    "sandbox_permissions": "require_escalated",
                    "justification": "needs to write",
                },
            )
        ),
        openai.turn(openai.message("done")),
    )


def asking_spec(workdir: Path, state: Path, **options: Any) -> Any:
    return codex_spec(
        workdir,
        state,
        approval_policy="on-request",
        approval_decision="ask",
        sandbox="read-only",
        **options,
    )


async def first_pending(client: SessionClient, run_id: str) -> PendingApproval:
    async with asyncio.timeout(60):  # the CLI starts, calls the fake, asks
        while True:
            progress = await client.describe_run(run_id)
            if progress is not None and progress.pending_approvals:
                assert progress.phase == "awaiting_approval"
                return progress.pending_approvals[0]
            await asyncio.sleep(0.1)


@needs_codex
async def test_codex_approval_is_requested_listed_and_an_approve_lets_the_cli_proceed(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    openai_fake: openai.OpenAIResponsesFake,
    workdir: Path,
    state: Path,
) -> None:
    escalated_command(openai_fake)
    async with run_worker(secrets=codex_secrets(openai_fake)):
        sid = (await client.start_session(asking_spec(workdir, state))).session_id
        ref = await client.submit_run(sid, "make the file")
        pending = await first_pending(client, ref.run_id)
        assert pending.tool == "command_execution"
        assert "touch made-by-command" in str(pending.input)
        assert not (workdir / "made-by-command").exists()  # nothing ran before the approval
        # The session's describe lists it too (the activity told the session).
        async with asyncio.timeout(10):
            while True:
                view = await client.describe(sid)
                if [a.digest for a in view.runs[0].pending_approvals] == [pending.digest]:
                    break
                await asyncio.sleep(0.1)

        # A digest for other arguments is rejected, and takes no effect.
        other = action_digest(
            call_id=pending.call_id,
            tool=pending.tool,
            arguments_sha256=sha256_of({"command": "rm -rf /"}),
            policy_version=pending.policy_version,
            expires_at=pending.expires_at,
        )
        with pytest.raises(AsmError) as mismatch:
            await client.approve(ref.run_id, other, call_id=pending.call_id)
        assert mismatch.value.code == "approval_mismatch"
        with pytest.raises(AsmError) as unknown:
            await client.deny(ref.run_id, other)
        assert unknown.value.code == "approval_not_found"

        # Two concurrent approvals: exactly one takes effect.
        outcomes = await asyncio.gather(
            client.approve(ref.run_id, pending.digest, reason="alice"),
            client.approve(ref.run_id, pending.digest, reason="bob"),
            return_exceptions=True,
        )
        granted = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, AsmError)]
        assert len(granted) == 1 and len(refused) == 1, outcomes
        assert refused[0].code == "approval_already_resolved"
        assert granted[0].decision == "granted"

        result = await client.wait_run(ref.run_id, sid)

    assert result.status is RunStatus.COMPLETED, result.error
    assert (workdir / "made-by-command").exists()  # the CLI proceeded
    events = await run_events(store, sid, ref.run_id)
    [asked] = of_type(events, EventType.TOOL_APPROVAL_REQUESTED)
    assert asked.data["digest"] == pending.digest
    assert asked.data["policy"] == "ask"
    assert asked.data["reason"] == "needs to write"
    [ok] = of_type(events, EventType.TOOL_APPROVAL_GRANTED)
    assert ok.data["digest"] == pending.digest and ok.data["decided_by"] == "human"
    assert of_type(events, EventType.TOOL_APPROVAL_DENIED) == []
    assert of_type(events, EventType.TOOL_CALL_COMPLETED)


@needs_codex
async def test_codex_deny_declines_the_command(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    openai_fake: openai.OpenAIResponsesFake,
    workdir: Path,
    state: Path,
) -> None:
    escalated_command(openai_fake)
    async with run_worker(secrets=codex_secrets(openai_fake)):
        sid = (await client.start_session(asking_spec(workdir, state))).session_id
        ref = await client.submit_run(sid, "make the file")
        pending = await first_pending(client, ref.run_id)
        assert (await client.deny(ref.run_id, pending.digest, reason="no")).decision == "denied"
        with pytest.raises(AsmError) as again:
            await client.approve(ref.run_id, pending.digest)
        assert again.value.code == "approval_already_resolved"
        result = await client.wait_run(ref.run_id, sid)
    assert result.status is RunStatus.COMPLETED, result.error
    assert not (workdir / "made-by-command").exists()
    events = await run_events(store, sid, ref.run_id)
    [denied] = of_type(events, EventType.TOOL_APPROVAL_DENIED)
    assert denied.data["digest"] == pending.digest and denied.data["reason"] == "no"
    [failed] = of_type(events, EventType.TOOL_CALL_FAILED)
    assert failed.data["status"] == "declined"


@needs_codex
async def test_codex_approval_expires_as_denied(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    openai_fake: openai.OpenAIResponsesFake,
    workdir: Path,
    state: Path,
) -> None:
    escalated_command(openai_fake)
    async with run_worker(secrets=codex_secrets(openai_fake)):
        spec = asking_spec(workdir, state, approval_timeout_seconds=1.0)
        sid = (await client.start_session(spec)).session_id
        ref = await client.submit_run(sid, "make the file")
        pending = await first_pending(client, ref.run_id)
        assert pending.expires_at is not None
        result = await client.wait_run(ref.run_id, sid)
        with pytest.raises(AsmError) as late:
            await client.approve(ref.run_id, pending.digest)
        assert late.value.code in ("approval_already_resolved", "invalid_operation")
    assert result.status is RunStatus.COMPLETED, result.error
    assert not (workdir / "made-by-command").exists()
    events = await run_events(store, sid, ref.run_id)
    [denied] = of_type(events, EventType.TOOL_APPROVAL_DENIED)
    assert denied.data["reason"] == "expired"


@needs_codex
async def test_session_policy_always_answers_at_once(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    openai_fake: openai.OpenAIResponsesFake,
    workdir: Path,
    state: Path,
) -> None:
    escalated_command(openai_fake)
    async with run_worker(secrets=codex_secrets(openai_fake)):
        spec = asking_spec(workdir, state).model_copy(
            update={"tool_policies": {"command_execution": "always"}}
        )
        sid = (await client.start_session(spec)).session_id
        result = await client.run(sid, "make the file")
    assert result.status is RunStatus.COMPLETED, result.error
    assert (workdir / "made-by-command").exists()
    events = await run_events(store, sid, result.run_id)
    [ok] = of_type(events, EventType.TOOL_APPROVAL_GRANTED)
    assert ok.data["decided_by"] == "policy" and ok.data["policy"] == "always"


@needs_claude
@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_claude_code_permission_request_is_requested_and_resolved_by_the_run(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    anthropic_fake: anthropic.AnthropicFake,
    workdir: Path,
    state: Path,
    decision: str,
) -> None:
    anthropic_fake.script(
        anthropic.Reply(
            [
                anthropic.Text("Running it."),
                anthropic.ToolUse("Bash", {"command": "echo approved > said.txt"}),
            ]
        ),
        anthropic.Reply([anthropic.Text("Done.")]),
    )
    spec = claude_spec(
        workdir,
        state,
        allowed_tools=[],
        permission_mode="default",
        permission_decision="ask",
    )
    async with run_worker(secrets=claude_secrets(anthropic_fake)):
        sid = (await client.start_session(spec)).session_id
        ref = await client.submit_run(sid, "Say it from bash")
        pending = await first_pending(client, ref.run_id)
        assert pending.tool == "Bash"
        assert pending.input == {"command": "echo approved > said.txt"}
        assert pending.arguments_sha256 == sha256_of({"command": "echo approved > said.txt"})
        assert not (workdir / "said.txt").exists()
        if decision == "approve":
            await client.approve(ref.run_id, pending.digest)
        else:
            await client.deny(ref.run_id, pending.digest, reason="not today")
        with pytest.raises(AsmError) as again:
            await client.deny(ref.run_id, pending.digest)
        assert again.value.code == "approval_already_resolved"
        result = await client.wait_run(ref.run_id, sid)
    assert result.status is RunStatus.COMPLETED, result.error
    events = await run_events(store, sid, ref.run_id)
    [asked] = of_type(events, EventType.TOOL_APPROVAL_REQUESTED)
    assert asked.data["digest"] == pending.digest and asked.data["name"] == "Bash"
    if decision == "approve":
        assert (workdir / "said.txt").read_text() == "approved\n"
        assert of_type(events, EventType.TOOL_APPROVAL_GRANTED)
    else:
        assert not (workdir / "said.txt").exists()
        [denied] = of_type(events, EventType.TOOL_APPROVAL_DENIED)
        assert denied.data["reason"] == "not today"
