"""The agent loop: tools run as activities, approvals and client-side tools wait durably, and
cancellation resolves what waits. Against the mock provider and a real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.activities.providers.mock import MockProvider
from agent_session_manager.activities.tools import Tool, tool
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.contract import MockScript, MockText, MockToolUse, RunRequest
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.tools import (
    PendingApproval,
    RunProgress,
    ToolSpec,
    action_digest,
    sha256_of,
)
from agent_session_manager.store import EventStore
from tests.client.test_cli import asm, cli_env
from tests.workflows.test_run_control import assert_no_failed_workflow_tasks

CALLS: list[str] = []


class Add(BaseModel):
    a: int
    b: int


@tool(description="Add two integers")
async def add(args: Add) -> str:
    CALLS.append(f"add {args.a} {args.b}")
    return str(args.a + args.b)


@tool(description="Delete a file", approval="ask", approval_timeout_seconds=600)
def delete(args: dict[str, Any]) -> str:
    CALLS.append(f"delete {args}")
    return "deleted"


@tool(description="Wait forever", heartbeat_timeout_seconds=2)
async def hang(args: dict[str, Any]) -> str:
    CALLS.append("hang")
    await asyncio.sleep(3600)
    return "never"


TOOLS: list[Tool] = [add, delete, hang]


def uses(*calls: tuple[str, dict[str, Any]], then: list[MockScript] | None = None) -> MockScript:
    """A model call that asks for ``calls`` (then the ``after_tools`` replies)."""
    return MockScript(
        steps=[MockToolUse(name=n, input=i) for n, i in calls],
        stop_reason="tool_use",
        after_tools=then or [],
    )


def text(t: str) -> MockScript:
    return MockScript(steps=[MockText(text=t)])


async def progress(client: SessionClient, run_id: str, phase: str) -> RunProgress:
    for _ in range(200):
        p = await client.describe_run(run_id)
        if p is not None and p.phase == phase:
            return p
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {phase}: {p}")


async def test_three_tool_loop_runs_each_tool_once_and_completes(
    client: SessionClient, store: EventStore, temporal: Client, run_worker: Any
) -> None:
    CALLS.clear()
    script = uses(
        ("add", {"a": 1, "b": 2}),
        then=[
            MockScript(
                steps=[MockToolUse(name="add", input={"a": 3, "b": 4})],
                stop_reason="tool_use",
            ),
            MockScript(
                steps=[MockToolUse(name="add", input={"a": 5, "b": 6})],
                stop_reason="tool_use",
            ),
            text("the sums are 3, 7 and 11"),
        ],
    )
    async with run_worker(tools=TOOLS):
        view = await client.start_session(agent_id="tools", tools=["add"])
        ref = await client.submit_run(
            view.session_id, request=RunRequest(prompt="add", mock=script)
        )
        result = await client.wait_run(ref.run_id, view.session_id)
        assert result.status is RunStatus.COMPLETED, result
        assert result.output == "the sums are 3, 7 and 11"
        assert CALLS == ["add 1 2", "add 3 4", "add 5 6"]
        events = await store.events(view.session_id, run_id=ref.run_id, limit=1000)
        done = [e for e in events if e.type is EventType.TOOL_CALL_COMPLETED]
        assert [e.data["output"] for e in done] == ["3", "7", "11"]
        assert all(e.attempt == 1 for e in done)
        transcript = await store.run_messages(ref.run_id)
        # user, then (assistant tool_use, user tool_result) x3, then the final assistant
        assert [m.role for m in transcript] == ["user"] + ["assistant", "user"] * 3 + ["assistant"]
        assert transcript[2].content[0]["content"] == "3"  # type: ignore[index]
        await assert_no_failed_workflow_tasks(temporal, f"run-{ref.run_id}")


async def test_unknown_tool_name_fails_the_run_typed(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker(tools=TOOLS):
        view = await client.start_session(agent_id="tools", tools=["nope"])
        ref = await client.submit_run(view.session_id, "hi")
        result = await client.wait_run(ref.run_id, view.session_id)
        assert result.status is RunStatus.FAILED
        assert result.error is not None and result.error["code"] == "tool_not_found"


async def test_max_turns_bounds_the_loop(client: SessionClient, run_worker: Any) -> None:
    forever = uses(("add", {"a": 1, "b": 1}))  # after_tools empty: asks again every time
    forever = forever.model_copy(update={"after_tools": [forever]})
    async with run_worker(tools=TOOLS):
        view = await client.start_session(agent_id="tools", tools=["add"], max_turns=3)
        ref = await client.submit_run(view.session_id, request=RunRequest(prompt="x", mock=forever))
        result = await client.wait_run(ref.run_id, view.session_id)
        assert result.status is RunStatus.FAILED
        assert result.error is not None and result.error["code"] == "max_turns_exceeded"


async def assert_other_arguments_rejected(
    client: SessionClient, run_id: str, pending: PendingApproval, arguments: dict[str, Any]
) -> None:
    """A digest for other arguments takes no effect: ``approval_mismatch`` when the call is
    named, ``approval_not_found`` when it is not."""
    other = action_digest(
        call_id=pending.call_id,
        tool=pending.tool,
        arguments_sha256=sha256_of(arguments),
        policy_version=pending.policy_version,
        expires_at=pending.expires_at,
    )
    with pytest.raises(AsmError) as mismatch:
        await client.approve(run_id, other, call_id=pending.call_id)
    assert mismatch.value.code == "approval_mismatch"
    with pytest.raises(AsmError) as unknown:
        await client.deny(run_id, other)
    assert unknown.value.code == "approval_not_found"


async def assert_one_of_two_approvals_takes_effect(
    client: SessionClient, run_id: str, pending: PendingApproval
) -> None:
    """Two concurrent approvals of one request: one is granted, the other refused."""
    outcomes = await asyncio.gather(
        client.approve(run_id, pending.digest, reason="alice"),
        client.approve(run_id, pending.digest, reason="bob"),
        return_exceptions=True,
    )
    granted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, AsmError)]
    assert len(granted) == 1 and len(refused) == 1, outcomes
    assert refused[0].code == "approval_already_resolved"
    assert granted[0].decision == "granted"


async def _ask_run(client: SessionClient, args: dict[str, Any]) -> tuple[str, str, PendingApproval]:
    view = await client.start_session(agent_id="tools", tools=["delete"])
    script = uses(("delete", args), then=[text("done")])
    ref = await client.submit_run(view.session_id, request=RunRequest(prompt="rm", mock=script))
    p = await progress(client, ref.run_id, "awaiting_approval")
    assert len(p.pending_approvals) == 1
    # The session's describe lists it too (the run tells its session).
    for _ in range(100):
        run = (await client.describe(view.session_id)).runs[-1]
        if run.pending_approvals:
            break
        await asyncio.sleep(0.05)
    assert run.waiting == "awaiting_approval"
    assert run.pending_approvals == p.pending_approvals
    return view.session_id, ref.run_id, p.pending_approvals[0]


async def test_concurrent_approvals_take_effect_once(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    CALLS.clear()
    async with run_worker(tools=TOOLS):
        sid, rid, pending = await _ask_run(client, {"path": "/tmp/x"})
        assert CALLS == []  # nothing ran before the approval
        await assert_one_of_two_approvals_takes_effect(client, rid, pending)
        result = await client.wait_run(rid, sid)
        assert result.status is RunStatus.COMPLETED and result.output == "done"
        assert CALLS == ["delete {'path': '/tmp/x'}"]
        run = (await client.describe(sid)).runs[-1]
        assert run.waiting is None and run.pending_approvals == []
        types = [e.type for e in await store.events(sid, run_id=rid, limit=1000)]
        assert types.count(EventType.TOOL_APPROVAL_REQUESTED) == 1
        assert types.count(EventType.TOOL_APPROVAL_GRANTED) == 1


async def test_a_digest_for_other_arguments_is_rejected_and_deny_tells_the_model(
    client: SessionClient, run_worker: Any
) -> None:
    CALLS.clear()
    async with run_worker(tools=TOOLS):
        sid, rid, pending = await _ask_run(client, {"path": "/tmp/a"})
        await assert_other_arguments_rejected(client, rid, pending, {"path": "/etc/passwd"})
        assert (await client.deny(rid, pending.digest, reason="no")).decision == "denied"
        with pytest.raises(AsmError) as again:
            await client.approve(rid, pending.digest)
        assert again.value.code == "approval_already_resolved"
        result = await client.wait_run(rid, sid)
        assert result.status is RunStatus.COMPLETED
        assert CALLS == []  # denied: never ran


async def test_an_expired_approval_resolves_as_denied(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    CALLS.clear()
    quick = ToolSpec(name="confirm", approval="ask", approval_timeout_seconds=1, executor="client")
    async with run_worker(tools=TOOLS):
        view = await client.start_session(agent_id="tools", client_tools=[quick])
        script = uses(("confirm", {}), then=[text("ok")])
        ref = await client.submit_run(view.session_id, request=RunRequest(prompt="x", mock=script))
        result = await client.wait_run(ref.run_id, view.session_id)
        assert result.status is RunStatus.COMPLETED
        denied = [
            e
            for e in await store.events(view.session_id, run_id=ref.run_id, limit=1000)
            if e.type is EventType.TOOL_APPROVAL_DENIED
        ]
        assert [e.data["reason"] for e in denied] == ["expired"]


async def test_client_side_tool_waits_for_the_application(
    client: SessionClient, run_worker: Any
) -> None:
    ask_user = ToolSpec(name="ask_user", executor="client")
    async with run_worker(tools=TOOLS):
        view = await client.start_session(agent_id="tools", client_tools=[ask_user])
        script = uses(("ask_user", {"q": "color?"}), then=[text("blue it is")])
        ref = await client.submit_run(view.session_id, request=RunRequest(prompt="x", mock=script))
        p = await progress(client, ref.run_id, "awaiting_tool_result")
        call_id = p.pending_tool_calls[0].call_id
        with pytest.raises(AsmError) as unknown:
            await client.submit_tool_result(ref.run_id, "toolu_nope", "x")
        assert unknown.value.code == "tool_call_not_found"
        await client.submit_tool_result(ref.run_id, call_id, "blue")
        with pytest.raises(AsmError) as second:
            await client.submit_tool_result(ref.run_id, call_id, "red")
        assert second.value.code in ("tool_result_already_submitted", "invalid_operation")
        result = await client.wait_run(ref.run_id, view.session_id)
        assert result.status is RunStatus.COMPLETED and result.output == "blue it is"


async def test_cancel_resolves_pending_approvals_and_stops_running_tools(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    CALLS.clear()
    async with run_worker(tools=TOOLS):
        view = await client.start_session(agent_id="tools", tools=["delete", "hang"])
        script = uses(("delete", {"p": 1}), ("hang", {}), then=[text("never")])
        ref = await client.submit_run(view.session_id, request=RunRequest(prompt="x", mock=script))
        await progress(client, ref.run_id, "awaiting_approval")
        for _ in range(100):
            if "hang" in CALLS:
                break
            await asyncio.sleep(0.05)
        assert "hang" in CALLS
        await client.cancel_run(view.session_id, ref.run_id)
        result = await client.wait_run(ref.run_id, view.session_id)
        assert result.status is RunStatus.CANCELLED
        events = await store.events(view.session_id, run_id=ref.run_id, limit=1000)
        denied = [e for e in events if e.type is EventType.TOOL_APPROVAL_DENIED]
        assert [e.data["reason"] for e in denied] == ["run cancelled"]
        stopped = [
            e for e in events if e.type is EventType.TOOL_CALL_FAILED and e.data["name"] == "hang"
        ]
        assert stopped and stopped[-1].data["code"] == "cancelled"
        # The next turn sends a valid transcript: the cancelled run's tool_use is not in it.
        assert await store.conversation(view.session_id, before_turn=2) == []
        ref2 = await client.submit_run(view.session_id, "again")
        assert (await client.wait_run(ref2.run_id, view.session_id)).status is RunStatus.COMPLETED


class _NoTools(MockProvider):
    name = "mock"

    def capabilities(self) -> list[Capability]:
        return [c for c in super().capabilities() if c.type != "tool"]


async def test_a_run_with_tools_on_a_provider_without_them_is_refused(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker(providers={"mock": _NoTools()}, tools=TOOLS):
        view = await client.start_session(agent_id="tools")
        with pytest.raises(AsmError) as refused:
            await client.submit_run(view.session_id, request=RunRequest(prompt="x", tools=["add"]))
        assert refused.value.code == "missing_required_capability"
        plain = await client.submit_run(view.session_id, "no tools")  # the session goes on
        assert (await client.wait_run(plain.run_id, view.session_id)).status is RunStatus.COMPLETED


async def test_approvals_cli_lists_approves_and_refuses_a_second_decision(
    env: WorkflowEnvironment,
    client: SessionClient,
    store: EventStore,
    task_queue: str,
    run_worker: Any,
) -> None:
    CALLS.clear()
    e = cli_env(env, store, task_queue)
    async with run_worker(tools=TOOLS):
        sid, rid, pending = await _ask_run(client, {"path": "/tmp/cli"})
        listed: list[dict[str, Any]] = []
        for _ in range(100):  # visibility lags the upsert a little
            code, out, err = await asm("approvals", "ls", "-s", sid, "-o", "json", env=e)
            assert code == 0, err
            listed = json.loads(out)
            if listed:
                break
            await asyncio.sleep(0.1)
        assert [p["digest"] for p in listed] == [pending.digest]
        code, out, err = await asm("approvals", "approve", rid, pending.digest, "-o", "json", env=e)
        assert code == 0, err
        assert json.loads(out)["decision"] == "granted"
        code, _, err = await asm("approvals", "deny", rid, pending.digest, "-o", "json", env=e)
        assert code == 1
        assert json.loads(err)["error"]["code"] == "approval_already_resolved"
        assert (await client.wait_run(rid, sid)).status is RunStatus.COMPLETED
        assert CALLS == ["delete {'path': '/tmp/cli'}"]


async def test_a_pending_approval_holds_through_the_sessions_continue_as_new(
    temporal: Client, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    """The approval lives in the run (which never continues-as-new); the session defers its
    continue-as-new until the run ends, queueing what comes meanwhile, then carries on."""
    CALLS.clear()
    async with run_worker(tools=TOOLS):
        client = SessionClient(temporal, store, task_queue=task_queue)
        view = await client.start_session(
            agent_id="tools",
            tools=["delete"],
            continue_as_new_after_runs=1,
            multitask_strategy="enqueue",
        )
        script = uses(("delete", {"path": "/tmp/can"}), then=[text("done")])
        ref = await client.submit_run(view.session_id, request=RunRequest(prompt="x", mock=script))
        pending = (await progress(client, ref.run_id, "awaiting_approval")).pending_approvals[0]
        queued = await client.submit_run(view.session_id, "next")
        assert queued.note == "queued"
        reconnected = SessionClient(
            await Client.connect(
                temporal.service_client.config.target_host,
                namespace=temporal.namespace,
                data_converter=temporal.data_converter,
            ),
            store,
            task_queue=task_queue,
        )
        listed: list[PendingApproval] = []
        for _ in range(100):
            listed = await reconnected.pending_approvals(view.session_id)
            if listed:
                break
            await asyncio.sleep(0.1)
        assert [a.digest for a in listed] == [pending.digest]
        await reconnected.approve(ref.run_id, pending.digest)
        assert (await client.wait_run(ref.run_id, view.session_id)).status is RunStatus.COMPLETED
        second = await client.wait_run(queued.run_id, view.session_id)
        assert second.status is RunStatus.COMPLETED
        assert (await client.describe(view.session_id)).continued >= 1
        assert CALLS == ["delete {'path': '/tmp/can'}"]
