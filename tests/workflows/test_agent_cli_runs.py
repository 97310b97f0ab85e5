"""Issue 7 acceptance: full ``AgentRun``s with ``provider="codex"`` and ``"claude-code"`` on the
real dev server.

The worker runs the real CLIs from the ``codex`` and ``claude-code`` extras (``codex
app-server`` from ``openai-codex-cli-bin``, the Claude Code binary bundled in
``claude-agent-sdk``) in a per-test working directory under ``tmp_path``, pointed at the
loopback fakes :class:`~tests.fakes.openai_responses_server.OpenAIResponsesFake` and
:class:`~tests.fakes.anthropic_server.AnthropicFake`. Credentials and base URLs reach the worker
only through ``run_worker(secrets=...)``. Each test drives a session through
:class:`~client.session_client.SessionClient` and checks the event store, the run's result,
what the fake received and, where it matters, the Temporal history and ``/proc``.

The claims both CLIs share (429 retried by Temporal, 400 fails at once, cancel mid-stream and
mid-command, a missing extra or a broken binary, a quiet command) are parametrized over a small
:class:`Cli` description of each provider and a :class:`Fake` that scripts either fake.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client

from agent_session_manager.activities.providers.claude_code._transport import claude_binary
from agent_session_manager.activities.providers.codex._transport import codex_binary
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import RetrySettings, SessionSpec, run_workflow_id
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import Event, EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore
from tests.fakes import anthropic_server as anthropic
from tests.fakes import openai_responses_server as openai

#: Distinctive, so a leak is easy to spot; each fake checks (or records) the one it gets.
OPENAI_KEY = "sk-test-codex-SECRET789"
ANTHROPIC_KEY = "sk-ant-test-claude-SECRET456"
CODEX_MODEL = "gpt-5.5"  # in the CLI's bundled catalog: exec_command + freeform apply_patch
CLAUDE_MODEL = "claude-sonnet-4-6"
#: Temporal's backoff, small: a retry must not cost the suite seconds.
FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=1)
#: The whole cancel path (heartbeat delivery, interrupt, TERM grace, KILL, terminal event).
CANCEL_BUDGET_S = 2.0


def _missing(find: Callable[[], Path]) -> str | None:
    try:
        find()
    except AsmError as exc:  # pragma: no cover - the dev environment installs both extras
        return exc.message
    return None


_NO_CODEX = _missing(codex_binary)
_NO_CLAUDE = _missing(claude_binary)
needs_codex = pytest.mark.skipif(_NO_CODEX is not None, reason=f"Codex CLI: {_NO_CODEX}")
needs_claude = pytest.mark.skipif(_NO_CLAUDE is not None, reason=f"Claude Code: {_NO_CLAUDE}")


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
async def openai_fake() -> AsyncIterator[openai.OpenAIResponsesFake]:
    async with openai.OpenAIResponsesFake() as server:
        yield server


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[anthropic.AnthropicFake]:
    """Accepts only :data:`ANTHROPIC_KEY`: a 2xx proves the worker's secret arrived."""
    async with anthropic.AnthropicFake(api_key=ANTHROPIC_KEY) as server:
        yield server


def codex_secrets(fake: openai.OpenAIResponsesFake) -> dict[str, str]:
    return {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake.base_url}


def claude_secrets(fake: anthropic.AnthropicFake) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": fake.base_url}


def codex_spec(workdir: Path, state: Path, **options: Any) -> SessionSpec:
    return SessionSpec(
        agent_id="agent-codex",
        provider="codex",
        model=CODEX_MODEL,
        system_prompt="You are a careful engineer.",
        provider_options={"working_directory": str(workdir), "state_dir": str(state), **options},
        retry=FAST_RETRY,
    )


def claude_spec(workdir: Path, state: Path, **options: Any) -> SessionSpec:
    return SessionSpec(
        agent_id="agent-claude-code",
        provider="claude-code",
        model=CLAUDE_MODEL,
        system_prompt="Be brief.",
        provider_options={
            "working_directory": str(workdir),
            "state_dir": str(state),
            "allowed_tools": ["Bash"],
            "permission_mode": "acceptEdits",
            "max_turns": 5,
            **options,
        },
        retry=FAST_RETRY,
    )


async def run_events(store: EventStore, session_id: str, run_id: str) -> list[Event]:
    """The run's own events; the session's ``turn_completed`` bookkeeping (written after the
    run ended, carrying the same run id, sometimes after the test has read) is left out."""
    events = await store.events(session_id, run_id=run_id, limit=10_000)
    return [e for e in events if e.type is not EventType.TURN_COMPLETED]


def of_type(events: list[Event], type: EventType) -> list[Event]:
    return [e for e in events if e.type is type]


def labels(events: list[Event], *, skip: tuple[EventType, ...] = ()) -> list[str]:
    """Event types in order (``message_streamed:<kind>`` when it has one), repeats collapsed."""
    out: list[str] = []
    for e in events:
        if e.type in skip:
            continue
        label = e.type.value + (f":{e.data['kind']}" if e.data.get("kind") else "")
        if not out or out[-1] != label:
            out.append(label)
    return out


def streamed(events: list[Event], kind: str | None = None) -> str:
    return "".join(
        str(e.data["text"])
        for e in events
        if e.type is EventType.MESSAGE_STREAMED and e.data.get("kind") == kind
    )


def usage_of(data: dict[str, Any]) -> TokenUsage:
    """The four counts of a ``token_usage_updated`` event (it carries extra provider fields)."""
    return TokenUsage.model_validate({k: data[k] for k in TokenUsage.model_fields if k in data})


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Live (not zombie) processes of this test: their working directory is under ``root`` or
    their command line names it, from ``/proc``.

    Scoped to the test's ``tmp_path`` rather than to the binary's path: another test run on the
    same machine may run the same CLI binary at the same time, and is none of our business.
    """
    found = []
    prefix = str(root)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                proc_state = f.read().rsplit(")", 1)[-1].split()[0]
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue  # gone between listdir and open, or not ours to inspect
        if proc_state != "Z" and (cwd.startswith(prefix) or prefix in cmdline):
            found.append((int(entry), cmdline))
    return found


def running(binary: Path, processes: list[tuple[int, str]]) -> bool:
    return any(str(binary) in cmdline for _, cmdline in processes)


async def started_attempts(temporal: Client, run_id: str) -> list[Any]:
    """The provider activity's ``ActivityTaskStarted`` attributes in the run's history."""
    history = await temporal.get_workflow_handle(run_workflow_id(run_id)).fetch_history()
    return [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


# --- codex: one full turn, and the next run in the same thread ----------------------------------

PATCH = "*** Begin Patch\n*** Add File: notes.txt\n+written by codex\n*** End Patch\n"
CODEX_TOTALS = TokenUsage(
    input_tokens=450 - 270,  # OpenAI's input minus its cached part
    output_tokens=80,
    cache_read_input_tokens=270,
)


def codex_full_turn() -> list[openai.StreamReply]:
    """Reasoning and a shell command, then a patch, then the answer: three model responses."""
    return [
        openai.turn(
            openai.reasoning("I should look around first."),
            openai.function_call("exec_command", {"cmd": "echo hello-from-shell"}),
            usage=openai.Usage(
                input_tokens=100, cached_input_tokens=20, output_tokens=30, reasoning_tokens=12
            ),
        ),
        openai.turn(
            openai.custom_tool_call("apply_patch", PATCH),
            usage=openai.Usage(input_tokens=150, cached_input_tokens=100, output_tokens=40),
        ),
        openai.turn(
            openai.message("I created notes.txt."),
            usage=openai.Usage(input_tokens=200, cached_input_tokens=150, output_tokens=10),
        ),
    ]


@needs_codex
async def test_codex_turn_stores_normalized_events_in_order_edits_the_workdir_and_reports_usage(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    openai_fake: openai.OpenAIResponsesFake,
    workdir: Path,
    state: Path,
) -> None:
    openai_fake.script(*codex_full_turn())
    async with run_worker(secrets=codex_secrets(openai_fake)):
        sid = (await client.start_session(codex_spec(workdir, state))).session_id
        result = await client.run(sid, "Create notes.txt and tell me what you did")
        view = await client.describe(sid)

    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == "I created notes.txt."
    assert result.stop_reason == "completed"
    assert result.attempts == 1
    assert result.usage == CODEX_TOTALS
    assert view.runs[0].usage == view.usage == CODEX_TOTALS

    events = await run_events(store, sid, result.run_id)
    assert labels(events, skip=(EventType.TOKEN_USAGE_UPDATED,)) == [
        "run_started",
        "message_sent",
        "message_streamed:reasoning",
        "tool_call_started",  # the shell command
        "tool_call_completed",
        "tool_call_started",  # the patch
        "tool_call_completed",
        "message_streamed",
        "message_received",
        "run_completed",
    ]
    # One usage report per model response, the last one after the answer, before the end.
    types = [e.type for e in events]
    usage_events = of_type(events, EventType.TOKEN_USAGE_UPDATED)
    assert len(usage_events) == 3
    assert types.index(EventType.MESSAGE_SENT) < types.index(EventType.TOKEN_USAGE_UPDATED)
    assert usage_events[-1].seq > of_type(events, EventType.MESSAGE_RECEIVED)[-1].seq
    assert usage_events[-1].seq < of_type(events, EventType.RUN_COMPLETED)[0].seq
    last_usage = usage_events[-1].data
    assert usage_of(last_usage) == CODEX_TOTALS
    assert last_usage["provider_input_tokens"] == 450
    assert last_usage["reasoning_output_tokens"] == 12
    # The provider's events carry the attempt that made them (lifecycle events carry 0).
    assert {e.attempt for e in events[1:-1]} == {1}

    [sent] = of_type(events, EventType.MESSAGE_SENT)
    assert sent.data["thread_id"] and sent.data["resumed"] is False
    assert streamed(events, "reasoning") == "I should look around first."
    assert streamed(events) == "I created notes.txt."
    command, patch = of_type(events, EventType.TOOL_CALL_COMPLETED)
    started = of_type(events, EventType.TOOL_CALL_STARTED)
    assert [e.data["id"] for e in started] == [command.data["id"], patch.data["id"]]
    assert command.data["name"] == "command_execution"
    assert "echo hello-from-shell" in command.data["input"]["command"]
    assert command.data["exit_code"] == 0
    assert "hello-from-shell" in command.data["output"]
    assert patch.data["name"] == "file_change"
    assert patch.data["changed_paths"] == [str(workdir / "notes.txt")]
    [received] = of_type(events, EventType.MESSAGE_RECEIVED)
    assert received.data["text"] == "I created notes.txt."
    [completed] = of_type(events, EventType.RUN_COMPLETED)
    assert TokenUsage.model_validate(completed.data["usage"]) == CODEX_TOTALS
    assert of_type(events, EventType.TOOL_CALL_FAILED) == []

    # The patch really landed in the session's working directory.
    assert (workdir / "notes.txt").read_text() == "written by codex\n"
    # The key came from the worker's secrets and went to the fake only.
    requests = openai_fake.responses_requests
    assert len(requests) == 3
    assert {r.headers["authorization"] for r in requests} == {f"Bearer {OPENAI_KEY}"}
    for event in events:
        assert OPENAI_KEY not in event.model_dump_json(), event


@needs_codex
async def test_codex_second_run_continues_the_thread_with_the_first_turns_items(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    openai_fake: openai.OpenAIResponsesFake,
    workdir: Path,
    state: Path,
) -> None:
    openai_fake.script(
        *codex_full_turn(),
        openai.turn(
            openai.message("Yes, notes.txt holds one line."),
            usage=openai.Usage(input_tokens=300, output_tokens=9),
        ),
    )
    async with run_worker(secrets=codex_secrets(openai_fake)):
        sid = (await client.start_session(codex_spec(workdir, state))).session_id
        first = await client.run(sid, "Create notes.txt and tell me what you did")
        second = await client.run(sid, "Is the file still there?")
        view = await client.describe(sid)

    assert first.status is second.status is RunStatus.COMPLETED, (first.error, second.error)
    assert second.output == "Yes, notes.txt holds one line."
    assert second.usage == TokenUsage(input_tokens=300, output_tokens=9)
    assert view.usage == CODEX_TOTALS + second.usage
    # The second run resumed the first run's Codex thread...
    [sent_1] = of_type(await run_events(store, sid, first.run_id), EventType.MESSAGE_SENT)
    second_events = await run_events(store, sid, second.run_id)
    [sent_2] = of_type(second_events, EventType.MESSAGE_SENT)
    assert sent_2.data["thread_id"] == sent_1.data["thread_id"]
    assert sent_2.data["resumed"] is True
    assert of_type(second_events, EventType.ERROR_RECOVERED) == []  # no transcript fallback
    # ...so the model saw the first turn's real items, not a text summary of them.
    items = openai_fake.responses_requests[-1].json()["input"]
    kinds = [i.get("type") for i in items if i.get("type") != "message" or i["role"] == "assistant"]
    assert kinds == [
        "reasoning",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "message",  # the first run's answer
    ]
    outputs = json.dumps([i for i in items if i.get("type") == "function_call_output"])
    assert "hello-from-shell" in outputs
    assert "I created notes.txt." in json.dumps(items)
    assert "<conversation_so_far>" not in json.dumps(items)
    assert "Is the file still there?" in json.dumps(items[-1])


# --- claude-code: a Bash tool use and the final text ---------------------------------------------

CLAUDE_TOTALS = TokenUsage(
    input_tokens=250, output_tokens=30, cache_read_input_tokens=40, cache_creation_input_tokens=5
)


@needs_claude
async def test_claude_code_bash_tool_use_yields_tool_events_with_output_and_a_completed_run(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    anthropic_fake: anthropic.AnthropicFake,
    workdir: Path,
    state: Path,
) -> None:
    anthropic_fake.script(
        anthropic.Reply(
            [
                anthropic.Text("Running it."),
                anthropic.ToolUse(
                    "Bash", {"command": "echo hi-from-bash > said.txt && cat said.txt"}
                ),
            ],
            usage=anthropic.Usage(input_tokens=100, output_tokens=20, cache_read_input_tokens=40),
        ),
        anthropic.Reply(
            [anthropic.Text("The command printed hi-from-bash.")],
            usage=anthropic.Usage(
                input_tokens=150, output_tokens=10, cache_creation_input_tokens=5
            ),
        ),
    )
    async with run_worker(secrets=claude_secrets(anthropic_fake)):
        sid = (await client.start_session(claude_spec(workdir, state))).session_id
        result = await client.run(sid, "Say hi from bash")
        view = await client.describe(sid)

    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == "The command printed hi-from-bash."
    assert result.stop_reason == "end_turn"
    assert result.attempts == 1
    assert result.usage == CLAUDE_TOTALS
    assert view.runs[0].usage == view.usage == CLAUDE_TOTALS

    events = await run_events(store, sid, result.run_id)
    assert labels(events, skip=(EventType.MESSAGE_STREAMED, EventType.TOKEN_USAGE_UPDATED)) == [
        "run_started",
        "message_sent",
        "message_received",
        "tool_call_started",
        "tool_call_completed",
        "message_received",
        "run_completed",
    ]
    [started] = of_type(events, EventType.TOOL_CALL_STARTED)
    [done] = of_type(events, EventType.TOOL_CALL_COMPLETED)
    assert started.data["name"] == done.data["name"] == "Bash"
    assert started.data["id"] == done.data["id"]
    assert "echo hi-from-bash" in done.data["input"]["command"]
    assert done.data["output"] == "hi-from-bash"  # the command really ran...
    assert done.data["is_error"] is False
    assert (workdir / "said.txt").read_text() == "hi-from-bash\n"  # ...in the working directory
    assert of_type(events, EventType.TOOL_CALL_FAILED) == []
    final_usage = of_type(events, EventType.TOKEN_USAGE_UPDATED)[-1]
    assert final_usage.data["final"] is True and final_usage.data["num_turns"] == 2
    assert final_usage.seq < of_type(events, EventType.RUN_COMPLETED)[0].seq
    [completed] = of_type(events, EventType.RUN_COMPLETED)
    assert TokenUsage.model_validate(completed.data["usage"]) == CLAUDE_TOTALS
    # The tool's output went back to the model in the second request.
    first, second = anthropic_fake.message_requests
    assert first.credential == second.credential == ANTHROPIC_KEY
    assert "hi-from-bash" in json.dumps(second.json["messages"][-1])


# --- what both CLIs must do ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cli:
    """One agent-CLI provider as the shared tests drive it."""

    provider: str
    module: str
    """The provider's module; ``<module>.<binary.__name__>`` is where it finds its CLI."""
    binary: Callable[[], Path]
    extra_module: str
    """The import that fails when the extra is not installed."""
    pip_command: str
    make_spec: Callable[[Path, Path], SessionSpec]

    def spec(self, workdir: Path, state: Path, **fields: Any) -> SessionSpec:
        """The provider's session spec, with ``fields`` overridden."""
        return self.make_spec(workdir, state).model_copy(update=fields)


CODEX = Cli(
    "codex",
    "agent_session_manager.activities.providers.codex._provider",
    codex_binary,
    "codex_cli_bin",
    "pip install 'agent-session-manager[codex]'",
    codex_spec,
)
CLAUDE = Cli(
    "claude-code",
    "agent_session_manager.activities.providers.claude_code._provider",
    claude_binary,
    "claude_agent_sdk",
    "pip install 'agent-session-manager[claude-code]'",
    claude_spec,
)


class Fake:
    """The provider's wire fake behind one vocabulary: replies, errors, a stalling stream."""

    def __init__(
        self, cli: Cli, codex: openai.OpenAIResponsesFake, claude: anthropic.AnthropicFake
    ) -> None:
        self.cli = cli
        self.codex = codex
        self.claude = claude

    @property
    def secrets(self) -> dict[str, str]:
        return codex_secrets(self.codex) if self.cli is CODEX else claude_secrets(self.claude)

    def answer(self, text: str) -> Any:
        if self.cli is CODEX:
            return openai.turn(openai.message(text))
        return anthropic.Reply([anthropic.Text(text)])

    def http_error(self, status: int, message: str) -> Any:
        if self.cli is CODEX:
            return openai.http_error(status, message)
        return anthropic.HttpError(status, message=message)

    def stalls_mid_turn(self) -> Any:
        """A reply that streams some text, then holds the connection open without ending."""
        if self.cli is CODEX:
            return openai.turn(
                openai.reasoning("thinking slowly"), openai.message("partial answer"), hang=True
            )
        return anthropic.Reply(
            [anthropic.Text("Thinking about it", " slowly...")], interrupt=anthropic.Stall(4)
        )

    def runs_a_command(self, command: str, then: str = "never reached") -> list[Any]:
        """A model response asking for ``command`` in the shell, then the answer ``then``."""
        if self.cli is CODEX:
            call = openai.function_call("exec_command", {"cmd": command, "yield_time_ms": 60000})
            return [openai.turn(call), self.answer(then)]
        tool_use = anthropic.ToolUse("Bash", {"command": command, "description": "wait"})
        return [anthropic.Reply([tool_use]), self.answer(then)]

    def script(self, *replies: Any) -> None:
        (self.codex if self.cli is CODEX else self.claude).script(*replies)

    @property
    def requests(self) -> int:
        if self.cli is CODEX:
            return len(self.codex.responses_requests)
        return len(self.claude.message_requests)

    @property
    def pending(self) -> int:
        return self.codex.pending if self.cli is CODEX else len(self.claude.pending)


def _present(cli: Cli) -> Any:
    missing = _NO_CODEX if cli is CODEX else _NO_CLAUDE
    return pytest.param(
        cli,
        id=cli.provider,
        marks=pytest.mark.skipif(missing is not None, reason=f"{cli.provider}: {missing}"),
    )


BOTH = [_present(CODEX), _present(CLAUDE)]


@pytest.fixture
def fake(
    request: pytest.FixtureRequest,
    openai_fake: openai.OpenAIResponsesFake,
    anthropic_fake: anthropic.AnthropicFake,
) -> Fake:
    return Fake(request.param, openai_fake, anthropic_fake)


def both(test: Any) -> Any:
    """Run ``test`` once per CLI, with that CLI's :class:`Fake` (``fake.cli`` says which)."""
    return pytest.mark.parametrize("fake", BOTH, indirect=True)(test)


@both
async def test_429_is_rate_limited_and_retried_by_temporal_until_the_second_attempt_succeeds(
    client: SessionClient,
    store: EventStore,
    temporal: Client,
    run_worker: Any,
    fake: Fake,
    workdir: Path,
    state: Path,
) -> None:
    fake.script(fake.http_error(429, "Rate limit reached"), fake.answer("Made it on try two."))
    async with run_worker(secrets=fake.secrets):
        sid = (await client.start_session(fake.cli.spec(workdir, state))).session_id
        result = await client.run(sid, "go")

    assert result.status is RunStatus.COMPLETED, result.error
    assert result.attempts == 2
    assert result.output == "Made it on try two."
    assert fake.requests == 2  # one per attempt: the CLI itself did not retry
    events = await run_events(store, sid, result.run_id)
    [failed] = of_type(events, EventType.ERROR_OCCURRED)
    assert failed.attempt == 1
    assert failed.data["code"] == "provider_rate_limited"
    assert failed.data["retryable"] is True
    assert failed.data["provider_error"]["status_code"] == 429
    [recovered] = of_type(events, EventType.ERROR_RECOVERED)
    assert recovered.attempt == 2 and recovered.data["superseded_attempts"] == [1]
    [completed] = of_type(events, EventType.RUN_COMPLETED)
    assert completed.data["attempts"] == 2
    # Temporal made the retry: the attempt that finished is #2, after a rate-limit failure.
    [started] = await started_attempts(temporal, result.run_id)
    assert started.attempt == 2
    assert started.last_failure.application_failure_info.type == "provider_rate_limited"


@both
async def test_400_fails_the_run_at_once_with_invalid_input(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    fake: Fake,
    workdir: Path,
    state: Path,
) -> None:
    fake.script(
        fake.http_error(400, "Unsupported parameter: 'frobnicate'"),
        fake.answer("must never be used"),
    )
    async with run_worker(secrets=fake.secrets):
        sid = (await client.start_session(fake.cli.spec(workdir, state))).session_id
        result = await client.run(sid, "go")
        view = await client.describe(sid)
        await asyncio.sleep(0.5)  # a (wrong) retry would have arrived by now: backoff is 0.1 s

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error["code"] == "invalid_input"
    assert result.error["retryable"] is False
    assert "frobnicate" in result.error["message"]
    assert result.attempts == 1
    assert fake.requests == 1 and fake.pending == 1
    assert view.runs[0].status is RunStatus.FAILED
    events = await run_events(store, sid, result.run_id)
    assert [(e.attempt, e.data["code"]) for e in of_type(events, EventType.ERROR_OCCURRED)] == [
        (1, "invalid_input")
    ]
    assert len(of_type(events, EventType.RUN_FAILED)) == 1
    assert of_type(events, EventType.RUN_COMPLETED) == []
    row = await store.get_run(result.run_id)
    assert row is not None and row.status == "failed" and row.attempts == 1


async def cancel(client: SessionClient, session_id: str, run_id: str) -> tuple[RunStatus, float]:
    """``cancel_run`` (it returns once the run is terminal, which is after the provider
    activity let go) and how long it took; a hang fails here, not at the RPC's own timeout."""
    started = time.monotonic()
    async with asyncio.timeout(5 * CANCEL_BUDGET_S):
        ref = await client.cancel_run(session_id, run_id)
    return ref.status, time.monotonic() - started


@both
async def test_cancel_mid_turn_ends_the_run_cancelled_within_2s_and_leaves_no_cli_process(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    fake: Fake,
    workdir: Path,
    state: Path,
    tmp_path: Path,
) -> None:
    fake.script(fake.stalls_mid_turn(), fake.answer("must never be used"))
    async with run_worker(secrets=fake.secrets):
        sid = (await client.start_session(fake.cli.spec(workdir, state))).session_id
        ref = await client.submit_run(sid, "a long answer, please")
        async with asyncio.timeout(30):  # the CLI starts and streams
            async for _ in client.stream_text(sid, ref.run_id):
                break
        assert running(fake.cli.binary(), processes_under(tmp_path)), "no CLI mid-turn"
        status, elapsed = await cancel(client, sid, ref.run_id)
        left = processes_under(tmp_path)
        result = await client.wait_run(ref.run_id, sid)
        view = await client.describe(sid)

    assert status is RunStatus.CANCELLED
    assert elapsed < CANCEL_BUDGET_S
    assert left == []
    assert result.status is RunStatus.CANCELLED
    assert view.runs[0].status is RunStatus.CANCELLED
    assert fake.requests == 1 and fake.pending == 1  # a cancel is not retried
    events = await run_events(store, sid, ref.run_id)
    types = [e.type for e in events]
    assert types.count(EventType.RUN_CANCELLED) == 1
    assert types[-1] is EventType.RUN_CANCELLED  # nothing streamed lands after the end
    assert EventType.RUN_COMPLETED not in types and EventType.RUN_FAILED not in types
    row = await store.get_run(ref.run_id)
    assert row is not None and row.status == "cancelled"


@both
async def test_cancel_during_a_shell_command_kills_the_command_and_the_cli_within_2s(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    fake: Fake,
    workdir: Path,
    state: Path,
    tmp_path: Path,
) -> None:
    # A command that never ends on its own. Codex runs commands in their own PTY sessions,
    # outside the CLI's process group: only the provider's tree kill reaches them.
    marker = workdir / "asm-marker-sleep"
    marker.write_text("#!/bin/sh\nwhile :; do sleep 0.1; done\n")
    marker.chmod(0o755)
    fake.script(*fake.runs_a_command(str(marker)))
    async with run_worker(secrets=fake.secrets):
        sid = (await client.start_session(fake.cli.spec(workdir, state))).session_id
        ref = await client.submit_run(sid, "run the marker")
        deadline = time.monotonic() + 30
        while not (
            of_type(await run_events(store, sid, ref.run_id), EventType.TOOL_CALL_STARTED)
            and running(marker, processes_under(tmp_path))
        ):
            assert time.monotonic() < deadline, "the command never started"
            await asyncio.sleep(0.05)
        assert running(fake.cli.binary(), processes_under(tmp_path))
        status, elapsed = await cancel(client, sid, ref.run_id)
        left = processes_under(tmp_path)

    assert status is RunStatus.CANCELLED
    assert elapsed < CANCEL_BUDGET_S
    assert left == []
    assert fake.requests == 1 and fake.pending == 1
    events = await run_events(store, sid, ref.run_id)
    assert of_type(events, EventType.TOOL_CALL_COMPLETED) == []
    assert events[-1].type is EventType.RUN_CANCELLED


@both
async def test_missing_extra_fails_the_run_with_provider_unavailable_naming_the_pip_command(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    fake: Fake,
    workdir: Path,
    state: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The providers expose no seam for "binary not installed": as the provider tests do,
    # make the extra's import fail (the worker runs in this process).
    monkeypatch.setitem(sys.modules, fake.cli.extra_module, None)
    fake.script(fake.answer("must never be used"))
    async with run_worker(secrets=fake.secrets):
        sid = (await client.start_session(fake.cli.spec(workdir, state))).session_id
        result = await client.run(sid, "go")

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error["code"] == "provider_unavailable"
    assert result.error["retryable"] is False
    assert fake.cli.pip_command in result.error["message"]
    assert result.error["details"]["fix"] == fake.cli.pip_command
    assert "Traceback" not in json.dumps(result.error)
    assert result.attempts == 1
    assert fake.requests == 0
    events = await run_events(store, sid, result.run_id)
    [failed] = of_type(events, EventType.ERROR_OCCURRED)
    assert failed.data["code"] == "provider_unavailable"
    assert fake.cli.pip_command in failed.data["message"]
    [run_failed] = of_type(events, EventType.RUN_FAILED)
    assert run_failed.data["error"]["code"] == "provider_unavailable"


@both
async def test_a_cli_that_cannot_start_fails_the_run_at_once_with_the_pip_command(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    fake: Fake,
    workdir: Path,
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The extra is there but its binary is broken (here: not executable). The same patch point
    # the provider tests use to wrap the binary in strace.
    broken = tmp_path / "broken-cli"
    broken.write_text("not a program\n")
    monkeypatch.setattr(f"{fake.cli.module}.{fake.cli.binary.__name__}", lambda: broken)
    fake.script(fake.answer("must never be used"))
    async with run_worker(secrets=fake.secrets):
        sid = (await client.start_session(fake.cli.spec(workdir, state))).session_id
        result = await client.run(sid, "go")

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error["code"] == "provider_unavailable"
    assert result.error["retryable"] is False
    assert fake.cli.pip_command in result.error["message"]
    assert result.error["details"]["fix"] == fake.cli.pip_command
    assert result.attempts == 1
    assert fake.requests == 0


@both
async def test_a_quiet_command_longer_than_the_heartbeat_timeout_does_not_time_the_run_out(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    fake: Fake,
    workdir: Path,
    state: Path,
) -> None:
    # An agent's command may print nothing for a long time (an install, a build, a test run).
    # The CLI is alive and working, and the activity keeps heartbeating meanwhile; only the
    # model going quiet is a provider timeout. One attempt: a retry would hide the failure.
    # 3 s, not 1 s: on a loaded two-core machine a worker can miss a 1 s heartbeat deadline
    # (throttle 0.2 s) with no quiet command at all. The claim holds at any scale as long as the
    # command stays quiet for longer than the timeout: 4 s > 3 s.
    fake.script(*fake.runs_a_command("sleep 4 && echo quiet-done", then="It finished."))
    spec = fake.cli.spec(
        workdir,
        state,
        heartbeat_timeout_seconds=3.0,
        retry=FAST_RETRY.model_copy(update={"max_attempts": 1}),
    )
    async with run_worker(secrets=fake.secrets):
        sid = (await client.start_session(spec)).session_id
        result = await client.run(sid, "run the slow command")

    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == "It finished."
    events = await run_events(store, sid, result.run_id)
    [done] = of_type(events, EventType.TOOL_CALL_COMPLETED)
    assert "quiet-done" in done.data["output"]
