"""The ``claude-code`` provider end to end: the bundled Claude Code CLI against the Anthropic
fake (``tests/fakes/anthropic_server.py``) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent_session_manager.activities.providers.base import ProviderRequest, ProviderResult
from agent_session_manager.activities.providers.claude_code import ClaudeCodeProvider
from agent_session_manager.activities.providers.claude_code._errors import classify_result
from agent_session_manager.activities.providers.claude_code._session import SESSION_BLOCK
from agent_session_manager.activities.providers.claude_code._transport import (
    INSTALL_HINT,
    claude_binary,
)
from agent_session_manager.core.contract import Message
from agent_session_manager.core.errors import MAX_MESSAGE_BYTES, AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage
from tests.fakes.anthropic_server import (
    AnthropicFake,
    HttpError,
    Reply,
    Stall,
    Text,
    Thinking,
    ToolUse,
    Usage,
    html_error_page,
)

MODEL = "claude-sonnet-4-6"

try:
    claude_binary()
    _MISSING: str | None = None
except AsmError as exc:  # pragma: no cover - the dev extra installs it
    _MISSING = exc.message

needs_claude = pytest.mark.skipif(
    _MISSING is not None, reason=f"Claude Code CLI missing: {_MISSING}"
)


class RecordingSink:
    """An EventSink that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[EventType, dict[str, Any]]] = []

    async def emit(self, type: EventType, data: dict[str, Any] | None = None) -> None:
        self.events.append((type, dict(data or {})))

    async def flush(self) -> None:
        return None

    def of(self, type: EventType) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == type]

    def collapsed(self) -> list[str]:
        out: list[str] = []
        for t, d in self.events:
            label = t.value + (":reasoning" if d.get("kind") == "reasoning" else "")
            if not out or out[-1] != label:
                out.append(label)
        return out


def make_request(
    fake: AnthropicFake,
    workdir: Path,
    state: Path,
    prompt: str = "Say hi from bash",
    *,
    history: list[Message] | None = None,
    run_id: str = "r1",
    **options: Any,
) -> ProviderRequest:
    return ProviderRequest(
        session_id="s1",
        run_id=run_id,
        attempt=1,
        turn=1 + len(history or []) // 2,
        model=MODEL,
        system_prompt="Be brief.",
        history=list(history or []),
        messages=[Message(role="user", content=prompt)],
        options={
            "working_directory": str(workdir),
            "state_dir": str(state),
            "allowed_tools": ["Bash"],
            "permission_mode": "acceptEdits",
            "max_turns": 5,
            **options,
        },
        secrets={"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake.base_url},
    )


def bash_turn() -> list[Reply]:
    return [
        Reply(
            [
                Thinking("The user wants bash."),
                Text("Running it."),
                ToolUse("Bash", {"command": "echo hi-from-bash", "description": "say hi"}),
            ],
            usage=Usage(input_tokens=100, output_tokens=20, cache_read_input_tokens=40),
        ),
        Reply(
            [Text("The command printed hi-from-bash.")],
            usage=Usage(input_tokens=150, output_tokens=10, cache_creation_input_tokens=5),
        ),
    ]


def claude_processes(workdir: Path) -> list[tuple[int, str]]:
    """Live processes running the bundled CLI (by cmdline) in ``workdir``: another test run on
    this machine may run the same binary at the same time."""
    binary = str(claude_binary())
    prefix = str(workdir.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                proc_state = f.read().rsplit(")", 1)[-1].split()[0]
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if proc_state != "Z" and cwd.startswith(prefix) and binary in cmdline:
            found.append((int(entry), cmdline))
    return found


# --- the happy path ------------------------------------------------------------------------


@needs_claude
async def test_bash_tool_use_and_final_text(workdir: Path, state: Path) -> None:
    sink = RecordingSink()
    async with AnthropicFake() as fake:
        fake.script(*bash_turn())
        result = await ClaudeCodeProvider().stream(make_request(fake, workdir, state), sink)
        requests = fake.message_requests

    assert sink.collapsed() == [
        "message_sent",
        "message_streamed:reasoning",
        "message_streamed",
        "message_received",
        "tool_call_started",
        "token_usage_updated",
        "tool_call_completed",
        "message_streamed",
        "message_received",
        "token_usage_updated",
    ]
    sent = sink.of(EventType.MESSAGE_SENT)[0]
    assert sent["session_id"] and sent["model"] == MODEL and sent["resumed"] is False

    (started,) = sink.of(EventType.TOOL_CALL_STARTED)
    (completed,) = sink.of(EventType.TOOL_CALL_COMPLETED)
    assert started["name"] == "Bash"
    assert started["input"]["command"] == "echo hi-from-bash"
    assert completed["id"] == started["id"]
    assert completed["output"] == "hi-from-bash"  # the command really ran
    assert completed["is_error"] is False

    streamed = "".join(
        d["text"] for d in sink.of(EventType.MESSAGE_STREAMED) if d.get("kind") != "reasoning"
    )
    assert streamed == "Running it.The command printed hi-from-bash."
    assert result.text == "The command printed hi-from-bash."
    assert result.stop_reason == "end_turn"

    # Usage: the fake's totals, and the CLI's cost and turn count in the last usage event.
    assert result.usage == TokenUsage(
        input_tokens=250,
        output_tokens=30,
        cache_read_input_tokens=40,
        cache_creation_input_tokens=5,
    )
    final = sink.of(EventType.TOKEN_USAGE_UPDATED)[-1]
    assert final["final"] is True and final["num_turns"] == 2
    assert final["total_cost_usd"] > 0
    assert result.metadata["num_turns"] == 2
    assert result.metadata["total_cost_usd"] == final["total_cost_usd"]
    assert result.content[-1] == {"type": SESSION_BLOCK, "session_id": sent["session_id"]}

    # What the CLI sent: our model, key, system prompt addition and the tool result.
    assert len(requests) == 2
    assert requests[0].credential == "sk-ant-test"
    assert requests[0].json["model"] == MODEL
    assert "Be brief." in json.dumps(requests[0].json["system"])
    assert "hi-from-bash" in json.dumps(requests[1].json["messages"][-1])
    assert not {t for t, _ in sink.events} & {
        EventType.RUN_STARTED,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
    }


# --- continuity ----------------------------------------------------------------------------


def continue_history(first: ProviderResult, prompt: str) -> list[Message]:
    return [Message(role="user", content=prompt), Message(role="assistant", content=first.content)]


@needs_claude
async def test_second_run_resumes_the_claude_code_session(workdir: Path, state: Path) -> None:
    provider = ClaudeCodeProvider()
    async with AnthropicFake() as fake:
        fake.script(*bash_turn())
        first = await provider.stream(make_request(fake, workdir, state), RecordingSink())
        fake.script(Reply([Text("Yes, it printed hi-from-bash.")]))
        sink = RecordingSink()
        second = await provider.stream(
            make_request(
                fake,
                workdir,
                state,
                "Did it work?",
                history=continue_history(first, "Say hi from bash"),
                run_id="r2",
            ),
            sink,
        )
        follow_up = fake.message_requests[-1].json["messages"]

    session_id = first.metadata["claude_code_session_id"]
    assert second.metadata["claude_code_session_id"] == session_id
    assert second.metadata["resumed"] is True
    assert not sink.of(EventType.ERROR_RECOVERED)
    sent = json.dumps(follow_up)
    # The first turn is in the second turn's input: the tool use, its result, the answer.
    assert "echo hi-from-bash" in sent
    assert "The command printed hi-from-bash." in sent
    assert "Did it work?" in json.dumps(follow_up[-1])


@needs_claude
async def test_missing_transcript_falls_back_to_a_new_session(workdir: Path, state: Path) -> None:
    history = [
        Message(role="user", content="Remember the word pelican."),
        Message(
            role="assistant",
            content=[
                {"type": "text", "text": "Noted: pelican."},
                {"type": SESSION_BLOCK, "session_id": "00000000-0000-4000-8000-000000000000"},
            ],
        ),
    ]
    sink = RecordingSink()
    async with AnthropicFake() as fake:
        fake.script(Reply([Text("pelican")]))
        result = await ClaudeCodeProvider().stream(
            make_request(fake, workdir, state, "Which word?", history=history), sink
        )
        sent = json.dumps(fake.message_requests[-1].json["messages"])
    assert sink.of(EventType.ERROR_RECOVERED)
    assert result.metadata["resumed"] is False
    assert "Remember the word pelican." in sent and "Noted: pelican." in sent


# --- errors --------------------------------------------------------------------------------


@needs_claude
async def test_429_is_rate_limited_and_retryable(workdir: Path, state: Path) -> None:
    async with AnthropicFake() as fake:
        fake.script(HttpError(429, retry_after=3))
        with pytest.raises(AsmError) as info:
            await ClaudeCodeProvider().stream(make_request(fake, workdir, state), RecordingSink())
        assert len(fake.message_requests) == 1  # the CLI's own retries are off
    assert info.value.code == "provider_rate_limited"
    assert info.value.retryable is True
    assert info.value.provider_error is not None
    assert info.value.provider_error.status_code == 429


@needs_claude
async def test_a_5mb_html_503_is_unavailable_with_a_short_message(
    workdir: Path, state: Path
) -> None:
    page = html_error_page(5 * 1024 * 1024, echo="sk-ant-test-PAGE-ECHO-0123456789")
    async with AnthropicFake() as fake:
        fake.script(HttpError(503, body=page, content_type="text/html"))
        with pytest.raises(AsmError) as info:
            await ClaudeCodeProvider().stream(make_request(fake, workdir, state), RecordingSink())
    err = info.value
    assert (err.code, err.retryable) == ("provider_unavailable", True)
    assert len(err.message.encode()) <= MAX_MESSAGE_BYTES
    assert len(json.dumps(err.to_dict()).encode()) < 16 * 1024
    assert "PAGE-ECHO" not in json.dumps(err.to_dict())


@needs_claude
async def test_400_fails_at_once_as_invalid_input(workdir: Path, state: Path) -> None:
    async with AnthropicFake() as fake:
        fake.script(HttpError(400, message="messages: text content blocks must be non-empty"))
        with pytest.raises(AsmError) as info:
            await ClaudeCodeProvider().stream(make_request(fake, workdir, state), RecordingSink())
        assert len(fake.message_requests) == 1  # no beta-stripping re-send
    assert info.value.code == "invalid_input"
    assert info.value.retryable is False
    assert "non-empty" in info.value.message


@needs_claude
@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (529, "provider_unavailable", True),
        (500, "provider_unavailable", True),
        (401, "provider_authentication_failed", False),
        (403, "provider_authentication_failed", False),
    ],
)
async def test_api_errors_are_classified(
    workdir: Path, state: Path, status: int, code: str, retryable: bool
) -> None:
    async with AnthropicFake() as fake:
        fake.script(HttpError(status))
        with pytest.raises(AsmError) as info:
            await ClaudeCodeProvider().stream(make_request(fake, workdir, state), RecordingSink())
    assert (info.value.code, info.value.retryable) == (code, retryable)


def test_classifier_falls_back_on_the_error_kind_and_text() -> None:
    assert classify_result(status=None, error_kind="rate_limit", message="x").code == (
        "provider_rate_limited"
    )
    assert classify_result(status=None, error_kind="billing_error", message="x").code == (
        "provider_quota_exceeded"
    )
    assert (
        classify_result(status=None, error_kind="unknown", message="Request timed out").code
        == "provider_timeout"
    )
    assert classify_result(status=None, error_kind=None, message="odd").code == "provider_error"
    assert classify_result(status=504, error_kind=None, message="x").code == "provider_timeout"


def test_a_gateway_page_as_the_result_is_unavailable_and_summed_up() -> None:
    # The page's words ("timeout" in a footer, say) are not the failure's.
    page = "API Error: <html><body>" + "request timeout trace " * 250_000 + "</body></html>"
    for status in (None, 503):
        err = classify_result(status=status, error_kind=None, message=page)
        assert (err.code, err.retryable) == ("provider_unavailable", True)
        assert "HTML page of" in err.message and len(err.message.encode()) <= MAX_MESSAGE_BYTES


@needs_claude
async def test_max_turns_ends_the_run_without_failing(workdir: Path, state: Path) -> None:
    async with AnthropicFake() as fake:
        fake.script(bash_turn()[0])
        result = await ClaudeCodeProvider().stream(
            make_request(fake, workdir, state, max_turns=1), RecordingSink()
        )
    assert result.stop_reason == "max_turns"
    assert result.metadata["terminal_reason"] == "max_turns"


# --- cancellation --------------------------------------------------------------------------


@needs_claude
async def test_cancel_mid_turn_stops_within_2s_and_leaves_no_process(
    workdir: Path, state: Path
) -> None:
    sink = RecordingSink()
    async with AnthropicFake() as fake:
        fake.script(Reply([Text("Thinking about it", " slowly...")], interrupt=Stall(4)))
        task = asyncio.create_task(
            ClaudeCodeProvider().stream(make_request(fake, workdir, state), sink)
        )
        deadline = time.monotonic() + 30
        while not sink.of(EventType.MESSAGE_STREAMED):
            assert time.monotonic() < deadline, "the stream never started"
            assert not task.done(), task
            await asyncio.sleep(0.05)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert claude_processes(workdir) == []


# --- isolation and configuration -----------------------------------------------------------


@needs_claude
async def test_the_cli_connects_only_to_the_configured_base_url(
    workdir: Path, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed: cannot observe the CLI's connections")
    log = tmp_path / "connect.log"
    wrapper = tmp_path / "claude-traced"
    wrapper.write_text(
        f'#!/bin/sh\nexec {strace} -f -qq -e trace=connect -o {log} {claude_binary()} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setattr(
        "agent_session_manager.activities.providers.claude_code._provider.claude_binary",
        lambda: wrapper,
    )
    async with AnthropicFake() as fake:
        fake.script(*bash_turn())
        await ClaudeCodeProvider().stream(make_request(fake, workdir, state), RecordingSink())
        port = fake.port
    inet = [line for line in log.read_text().splitlines() if "AF_INET" in line]
    assert inet, "strace saw no connection at all"
    for line in inet:
        assert f"sin_port=htons({port})" in line and "127.0.0.1" in line, line


@needs_claude
async def test_worker_environment_does_not_leak_into_the_cli(
    workdir: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASM_TEST_WORKER_SECRET", "do-not-leak")
    async with AnthropicFake() as fake:
        fake.script(
            Reply([ToolUse("Bash", {"command": "env | sort", "description": "env"})]),
            Reply([Text("done")]),
        )
        sink = RecordingSink()
        await ClaudeCodeProvider().stream(make_request(fake, workdir, state), sink)
    (completed,) = sink.of(EventType.TOOL_CALL_COMPLETED)
    assert "do-not-leak" not in completed["output"]
    assert f"HOME={state / 'claude-code' / 's1'}" in completed["output"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"working_directory": None}, "working_directory"),
        ({"working_directory": "/nonexistent/dir"}, "does not exist"),
        ({"permission_mode": "yolo"}, "permission_mode"),
        ({"max_turns": 0}, "max_turns"),
        ({"allowed_tools": 3}, "allowed_tools"),
    ],
)
async def test_invalid_options_are_invalid_input(
    workdir: Path, state: Path, options: dict[str, Any], fragment: str
) -> None:
    request = ProviderRequest(
        session_id="s",
        run_id="r",
        attempt=1,
        turn=1,
        model=None,
        system_prompt=None,
        history=[],
        messages=[Message(role="user", content="hi")],
        options={"working_directory": str(workdir), **options},
        secrets={"ANTHROPIC_API_KEY": "k"},
    )
    with pytest.raises(AsmError) as info:
        await ClaudeCodeProvider().stream(request, RecordingSink())
    assert info.value.code == "invalid_input"
    assert fragment in info.value.message


async def test_missing_extra_names_the_pip_command(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # the extra is not installed
    request = ProviderRequest(
        session_id="s",
        run_id="r",
        attempt=1,
        turn=1,
        model=None,
        system_prompt=None,
        history=[],
        messages=[Message(role="user", content="hi")],
        options={"working_directory": str(workdir)},
        secrets={"ANTHROPIC_API_KEY": "k"},
    )
    with pytest.raises(AsmError) as info:
        await ClaudeCodeProvider().stream(request, RecordingSink())
    assert info.value.code == "provider_unavailable"
    assert info.value.retryable is False
    assert INSTALL_HINT == "pip install 'agent-session-manager[claude-code]'"
    assert INSTALL_HINT in info.value.message
