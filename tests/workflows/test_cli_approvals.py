"""Issue 17, item 4: an agent CLI's approval request goes to a human through the run.

The real Codex CLI (``codex app-server``) runs against the Responses API fake; the model asks
for an escalated command, the CLI asks for approval, and the run lists it and takes the same
``approve`` / ``deny`` updates as a tool approval (see :mod:`workflows.cli_approvals`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    MockScript,
    MockSleep,
    MockText,
    RunRequest,
    RunSpec,
    SessionSpec,
    run_workflow_id,
)
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.tools import (
    CliApprovalRequest,
    PendingApproval,
    action_digest,
    sha256_of,
)
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
from tests.workflows.test_agent_loop import (
    assert_one_of_two_approvals_takes_effect,
    assert_other_arguments_rejected,
)
from tests.workflows.test_bad_input import (
    assert_no_failed_workflow_tasks,
    assert_replays,
    raw_client,
)

__all__ = ["raw_client"]  # the fixture, re-used


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


@pytest.fixture
async def codex_worker(
    run_worker: Any, openai_fake: openai.OpenAIResponsesFake
) -> AsyncIterator[None]:
    """A worker with Codex on the Responses fake, whose model asks for an escalated command;
    it runs for the whole test."""
    escalated_command(openai_fake)
    async with run_worker(secrets=codex_secrets(openai_fake)):
        yield


@dataclass
class Asked:
    """A Codex run waiting for its approval."""

    session_id: str
    run_id: str
    pending: PendingApproval


async def codex_asks(client: SessionClient, spec: SessionSpec) -> Asked:
    """Start a session with ``spec`` and a run that asks; wait until it is listed."""
    sid = (await client.start_session(spec)).session_id
    ref = await client.submit_run(sid, "make the file")
    return Asked(sid, ref.run_id, await first_pending(client, ref.run_id))


async def first_pending(client: SessionClient, run_id: str) -> PendingApproval:
    async with asyncio.timeout(60):  # the CLI starts, calls the fake, asks
        while True:
            progress = await client.describe_run(run_id)
            if progress is not None and progress.pending_approvals:
                assert progress.phase == "awaiting_approval"
                return progress.pending_approvals[0]
            await asyncio.sleep(0.1)


@needs_codex
@pytest.mark.usefixtures("codex_worker")
async def test_codex_approval_is_requested_listed_and_an_approve_lets_the_cli_proceed(
    client: SessionClient, store: EventStore, workdir: Path, state: Path
) -> None:
    asked = await codex_asks(client, asking_spec(workdir, state))
    sid, run_id, pending = asked.session_id, asked.run_id, asked.pending
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

    await assert_other_arguments_rejected(client, run_id, pending, {"command": "rm -rf /"})

    await assert_one_of_two_approvals_takes_effect(client, run_id, pending)

    result = await client.wait_run(run_id, sid)
    assert result.status is RunStatus.COMPLETED, result.error
    assert (workdir / "made-by-command").exists()  # the CLI proceeded
    events = await run_events(store, sid, run_id)
    [requested] = of_type(events, EventType.TOOL_APPROVAL_REQUESTED)
    assert requested.data["digest"] == pending.digest
    assert requested.data["policy"] == "ask"
    assert requested.data["reason"] == "needs to write"
    [ok] = of_type(events, EventType.TOOL_APPROVAL_GRANTED)
    assert ok.data["digest"] == pending.digest and ok.data["decided_by"] == "human"
    assert of_type(events, EventType.TOOL_APPROVAL_DENIED) == []
    assert of_type(events, EventType.TOOL_CALL_COMPLETED)


@needs_codex
@pytest.mark.usefixtures("codex_worker")
async def test_codex_deny_declines_the_command(
    client: SessionClient, store: EventStore, workdir: Path, state: Path
) -> None:
    asked = await codex_asks(client, asking_spec(workdir, state))
    digest = asked.pending.digest
    assert (await client.deny(asked.run_id, digest, reason="no")).decision == "denied"
    with pytest.raises(AsmError) as again:
        await client.approve(asked.run_id, digest)
    assert again.value.code == "approval_already_resolved"
    result = await client.wait_run(asked.run_id, asked.session_id)
    assert result.status is RunStatus.COMPLETED, result.error
    assert not (workdir / "made-by-command").exists()
    events = await run_events(store, asked.session_id, asked.run_id)
    [denied] = of_type(events, EventType.TOOL_APPROVAL_DENIED)
    assert denied.data["digest"] == digest and denied.data["reason"] == "no"
    [failed] = of_type(events, EventType.TOOL_CALL_FAILED)
    assert failed.data["status"] == "declined"


@needs_codex
@pytest.mark.usefixtures("codex_worker")
async def test_codex_approval_expires_as_denied(
    client: SessionClient, store: EventStore, workdir: Path, state: Path
) -> None:
    asked = await codex_asks(client, asking_spec(workdir, state, approval_timeout_seconds=1.0))
    assert asked.pending.expires_at is not None
    result = await client.wait_run(asked.run_id, asked.session_id)
    with pytest.raises(AsmError) as late:
        await client.approve(asked.run_id, asked.pending.digest)
    assert late.value.code in ("approval_already_resolved", "invalid_operation")
    assert result.status is RunStatus.COMPLETED, result.error
    assert not (workdir / "made-by-command").exists()
    events = await run_events(store, asked.session_id, asked.run_id)
    [denied] = of_type(events, EventType.TOOL_APPROVAL_DENIED)
    assert denied.data["reason"] == "expired"


@needs_codex
@pytest.mark.usefixtures("codex_worker")
async def test_cancelling_a_run_with_a_pending_codex_approval_resolves_it_denied(
    client: SessionClient, store: EventStore, workdir: Path, state: Path
) -> None:
    asked = await codex_asks(client, asking_spec(workdir, state))
    await client.cancel_run(asked.session_id, asked.run_id)
    result = await client.wait_run(asked.run_id, asked.session_id)
    with pytest.raises(AsmError) as late:
        await client.approve(asked.run_id, asked.pending.digest)
    assert late.value.code in ("approval_already_resolved", "invalid_operation")
    assert result.status is RunStatus.CANCELLED
    assert not (workdir / "made-by-command").exists()
    events = await run_events(store, asked.session_id, asked.run_id)
    [denied] = of_type(events, EventType.TOOL_APPROVAL_DENIED)
    assert denied.data["digest"] == asked.pending.digest
    assert denied.data["reason"] == "run cancelled"
    assert of_type(events, EventType.TOOL_APPROVAL_GRANTED) == []


@needs_codex
@pytest.mark.usefixtures("codex_worker")
async def test_session_policy_always_answers_at_once(
    client: SessionClient, store: EventStore, workdir: Path, state: Path
) -> None:
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


# --- careless and hostile inputs ----------------------------------------------------------

HEX = "0123456789abcdef"
digests = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=HEX, min_size=64, max_size=64).map(lambda h: "sha256:" + h),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))


def forged(run_id: str, session_id: str) -> Any:
    """Well-formed requests a client could send: no token, a wrong one, another run's."""
    approval = st.fixed_dictionaries(
        {
            "run_id": st.sampled_from([run_id, "run-other", ""]),
            "session_id": st.sampled_from([session_id, "sess-other"]),
            "call_id": st.text(min_size=1, max_size=20),
            "tool": st.text(max_size=20),
            "arguments_sha256": digests,
            "policy_version": st.text(max_size=20),
            "digest": digests,
        }
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        approval,
        st.fixed_dictionaries(
            {"approval": approval},
            optional={
                "token": st.one_of(st.none(), st.text(max_size=80), scalars),
                "activity_id": st.one_of(scalars, st.from_regex(r"\A[0-9]{1,12}\Z")),
                "attempt": st.one_of(scalars, st.integers(min_value=-1, max_value=2_000_000)),
            },
        ),
    )


@pytest.fixture
async def sleeping(client: SessionClient, run_worker: Any) -> AsyncIterator[tuple[str, str]]:
    """A run without tools busy in its provider call, its worker running for the whole test."""
    async with run_worker():
        view = await client.start_session(agent_id="fuzz-cli")
        script = MockScript(steps=[MockSleep(ms=20_000), MockText(text="done")])
        ref = await client.submit_run(view.session_id, request=RunRequest(prompt="x", mock=script))
        yield view.session_id, ref.run_id
        await client.cancel_run(view.session_id, ref.run_id)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), decision=st.one_of(scalars, digests))
async def test_forged_cli_approval_signals_and_raw_decisions_take_no_effect(
    sleeping: tuple[str, str], raw_client: Client, data: st.DataObject, decision: Any
) -> None:
    session_id, run_id = sleeping
    handle = raw_client.get_workflow_handle(run_workflow_id(run_id))
    await handle.signal("cli_approval_requested", data.draw(forged(run_id, session_id)))
    payload = {"digest": decision} if isinstance(decision, str) else decision
    for update in ("approve", "deny"):
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(update, payload)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type in ("validation_error", "invalid_operation"), cause.message


async def test_after_forged_signals_nothing_is_listed_and_history_replays(
    client: SessionClient, temporal: Client, raw_client: Client, sleeping: tuple[str, str]
) -> None:
    session_id, run_id = sleeping
    handle = raw_client.get_workflow_handle(run_workflow_id(run_id))
    real_shape = {
        "token": "not-the-runs",
        "approval": {
            "run_id": run_id,
            "session_id": session_id,
            "call_id": "c1",
            "tool": "Bash",
            "arguments_sha256": sha256_of({}),
            "policy_version": "v",
            "digest": sha256_of({"x": 1}),
        },
    }
    for payload in (None, [], {"approval": None}, real_shape):
        await handle.signal("cli_approval_requested", payload)
    assert await client.describe_run(run_id) is None  # nothing was listed
    await client.cancel_run(session_id, run_id)
    assert (await client.wait_run(run_id, session_id)).status is RunStatus.CANCELLED
    run = temporal.get_workflow_handle(run_workflow_id(run_id))
    await assert_no_failed_workflow_tasks(run)
    await assert_replays(run)


# --- a request left by a dead attempt -------------------------------------------------------


async def run_token(temporal: Client, run_id: str) -> str | None:
    """The run's token, as its spec carries it (what its own provider activity signals with)."""
    handle = temporal.get_workflow_handle(run_workflow_id(run_id))
    async for event in handle.fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [spec] = await temporal.data_converter.decode(payloads, [RunSpec])
        assert isinstance(spec, RunSpec)
        return spec.token
    raise AssertionError("the run has no history")


def cli_request(
    run_id: str, session_id: str, token: str | None, call_id: str, attempt: int | None
) -> CliApprovalRequest:
    """What the run's provider activity (id "1") sends when its CLI asks."""
    arguments = sha256_of({"command": "make"})
    return CliApprovalRequest(
        token=token,
        activity_id=None if attempt is None else "1",
        attempt=attempt,
        approval=PendingApproval(
            run_id=run_id,
            session_id=session_id,
            call_id=call_id,
            tool="command_execution",
            arguments_sha256=arguments,
            policy_version="v1",
            digest=action_digest(
                call_id=call_id,
                tool="command_execution",
                arguments_sha256=arguments,
                policy_version="v1",
                expires_at=None,
            ),
        ),
    )


async def test_a_newer_attempts_request_supersedes_what_an_older_attempt_left_pending(
    client: SessionClient, temporal: Client, sleeping: tuple[str, str]
) -> None:
    """What a worker crash leaves (tests/chaos/test_cli_approval_crash.py does it for real):
    attempt 1's CLI asked and died; attempt 2's CLI asks again, as a new call."""
    session_id, run_id = sleeping
    token = await run_token(temporal, run_id)
    handle = temporal.get_workflow_handle(run_workflow_id(run_id))

    async def ask(call_id: str, attempt: int | None) -> PendingApproval:
        request = cli_request(run_id, session_id, token, call_id, attempt)
        await handle.signal("cli_approval_requested", request)
        return request.approval

    async def listed() -> list[str]:
        progress = await client.describe_run(run_id)
        return [] if progress is None else [a.call_id for a in progress.pending_approvals]

    await ask("old", None)  # an activity of the release before attempts were told
    assert await listed() == ["old"]
    first = await ask("first", 1)
    assert await listed() == ["first"]
    second = await ask("second", 2)
    assert await listed() == ["second"]
    with pytest.raises(AsmError) as late:
        await client.approve(run_id, first.digest)
    assert late.value.code == "approval_already_resolved"
    assert "superseded: provider attempt 2" in late.value.message

    await ask("zombie", 1)  # an attempt older than the newest: its CLI's answer goes nowhere
    await ask("second", 2)  # the same signal again: nothing changes
    assert await listed() == ["second"]
    progress = await client.describe_run(run_id)
    assert progress is not None
    assert [(r.call_id, r.decision) for r in progress.resolved_approvals] == [
        ("old", "denied"),
        ("first", "denied"),
    ]
    assert (await client.approve(run_id, second.digest)).decision == "granted"
    assert await listed() == []

    await client.cancel_run(session_id, run_id)
    assert (await client.wait_run(run_id, session_id)).status is RunStatus.CANCELLED
    await assert_no_failed_workflow_tasks(handle)
    await assert_replays(handle)


async def pending_in_visibility(temporal: Client, run_id: str, count: int) -> None:
    """Wait until the run's ``AsmPendingApprovals`` says ``count`` (visibility lags a moment
    behind the upsert)."""
    query = f"WorkflowId = '{run_workflow_id(run_id)}' AND AsmPendingApprovals = {count}"
    async with asyncio.timeout(30):
        while True:
            if (await temporal.count_workflows(query)).count:
                return
            await asyncio.sleep(0.1)


def attempt_started(token: Any, attempt: Any, activity_id: Any = "1") -> dict[str, Any]:
    """What the run's provider activity (id "1") sends as a retried attempt starts."""
    return {"token": token, "activity_id": activity_id, "attempt": attempt}


async def test_a_retried_attempt_that_never_asks_supersedes_what_earlier_attempts_left(
    client: SessionClient, temporal: Client, raw_client: Client, sleeping: tuple[str, str]
) -> None:
    """attempt 1's CLI asked and died; attempt 2 starts and its CLI does not ask (yet): the
    request is dead all the same, and a dead attempt cannot expire it."""
    session_id, run_id = sleeping
    token = await run_token(temporal, run_id)
    handle = temporal.get_workflow_handle(run_workflow_id(run_id))
    raw = raw_client.get_workflow_handle(run_workflow_id(run_id))

    async def ask(call_id: str, attempt: int) -> PendingApproval:
        request = cli_request(run_id, session_id, token, call_id, attempt)
        await handle.signal("cli_approval_requested", request)
        return request.approval

    async def listed() -> list[str]:
        progress = await client.describe_run(run_id)
        return [] if progress is None else [a.call_id for a in progress.pending_approvals]

    first = await ask("first", 1)
    assert await listed() == ["first"]
    # Not the run's own, malformed, or no later than attempt 1: nothing changes.
    for payload in (
        None,
        [],
        {"attempt": 2},
        attempt_started("not-the-runs", 2),
        attempt_started(None, 2),
        attempt_started(token, 0),
        attempt_started(token, "two"),
        attempt_started(token, 1),
        attempt_started(token, 2, activity_id=None),
        attempt_started(token, 2, activity_id="x" * 300),
    ):
        await raw.signal("attempt_started", payload)
    await raw.signal("attempt_started", args=[attempt_started(token, 2), "extra"])
    assert await listed() == ["first"]
    await pending_in_visibility(temporal, run_id, 1)

    await raw.signal("attempt_started", attempt_started(token, 2))
    assert await listed() == []
    assert await client.pending_approvals(session_id) == []  # `asm approvals ls`
    await pending_in_visibility(temporal, run_id, 0)
    with pytest.raises(AsmError) as late:
        await client.approve(run_id, first.digest)
    assert late.value.code == "approval_already_resolved"
    assert "superseded: provider attempt 2 started" in late.value.message

    await raw.signal("attempt_started", attempt_started(token, 2))  # re-sent: no change
    await ask("zombie", 1)  # attempt 1 lives on somewhere: its CLI's answer goes nowhere
    assert await listed() == []
    second = await ask("second", 2)  # the retried attempt's CLI asks after all
    assert await listed() == ["second"]
    progress = await client.describe_run(run_id)
    assert progress is not None
    assert [(r.call_id, r.decision) for r in progress.resolved_approvals] == [("first", "denied")]
    assert (await client.approve(run_id, second.digest)).decision == "granted"

    await client.cancel_run(session_id, run_id)
    assert (await client.wait_run(run_id, session_id)).status is RunStatus.CANCELLED
    await assert_no_failed_workflow_tasks(handle)
    await assert_replays(handle)


def forged_attempts(token: str | None) -> Any:
    """``attempt_started`` payloads a careless or hostile client could send: any shape, any
    token but the run's, and the run's token with an attempt that cannot be."""
    impossible = st.one_of(
        st.none(),
        st.integers(max_value=0),
        st.integers(min_value=1_000_001),
        st.text(alphabet="ab -", max_size=8),
        st.lists(scalars, max_size=2),
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "token": st.one_of(scalars, st.text(max_size=80)).filter(lambda t: t != token),
            "activity_id": st.one_of(scalars, st.from_regex(r"\A[0-9]{1,12}\Z")),
            "attempt": st.one_of(scalars, st.integers(min_value=-1, max_value=2_000_000)),
        },
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        fields,
        st.builds(attempt_started, st.just(token), impossible, st.text(max_size=12)),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_forged_attempt_started_signals_change_nothing_and_wedge_nothing(
    client: SessionClient,
    temporal: Client,
    raw_client: Client,
    sleeping: tuple[str, str],
    data: st.DataObject,
) -> None:
    session_id, run_id = sleeping
    token = await run_token(temporal, run_id)
    handle = temporal.get_workflow_handle(run_workflow_id(run_id))
    request = cli_request(run_id, session_id, token, "kept", 1)
    await handle.signal("cli_approval_requested", request)  # re-sent each example: one entry
    raw = raw_client.get_workflow_handle(run_workflow_id(run_id))
    for payload in data.draw(st.lists(forged_attempts(token), min_size=1, max_size=4)):
        await raw.signal("attempt_started", payload)
    progress = await client.describe_run(run_id)  # answered: the workflow task went through
    assert progress is not None
    assert [a.call_id for a in progress.pending_approvals] == ["kept"]
    assert progress.resolved_approvals == []
    await assert_no_failed_workflow_tasks(handle)
