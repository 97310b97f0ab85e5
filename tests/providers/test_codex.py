"""The ``codex`` provider end to end: the real Codex CLI against the Responses API fake.

Every test runs the binary from the ``openai-codex-cli-bin`` wheel (``codex app-server``)
in a temporary working directory, pointed at ``OpenAIResponsesFake`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent_session_manager.activities.providers.base import ProviderRequest, ProviderResult
from agent_session_manager.activities.providers.codex import CodexProvider
from agent_session_manager.activities.providers.codex._errors import classify_turn_error
from agent_session_manager.activities.providers.codex._session import THREAD_BLOCK
from agent_session_manager.activities.providers.codex._transport import (
    INSTALL_HINT,
    codex_binary,
)
from agent_session_manager.core.contract import Message
from agent_session_manager.core.errors import MAX_MESSAGE_BYTES, AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage
from tests.fakes.anthropic_server import html_error_page
from tests.fakes.openai_responses_server import (
    OpenAIResponsesFake,
    Usage,
    custom_tool_call,
    failed_turn,
    function_call,
    html_error,
    http_error,
    message,
    reasoning,
    turn,
    web_search_call,
)

MODEL = "gpt-5.5"  # in the CLI's bundled catalog: exec_command + freeform apply_patch tools

try:
    codex_binary()
    _MISSING: str | None = None
except AsmError as exc:  # pragma: no cover - the dev extra installs it
    _MISSING = exc.message

needs_codex = pytest.mark.skipif(_MISSING is not None, reason=f"Codex CLI missing: {_MISSING}")


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

    def collapsed(
        self, *, skip: tuple[EventType, ...] = (), skip_kinds: tuple[str, ...] = ()
    ) -> list[str]:
        """Event types in order, consecutive repeats collapsed; ``skip_kinds`` drops streamed
        events of those kinds."""
        out: list[str] = []
        for t, d in self.events:
            if t in skip or d.get("kind") in skip_kinds:
                continue
            label = t.value + (f":{d['kind']}" if d.get("kind") else "")
            if not out or out[-1] != label:
                out.append(label)
        return out


def make_request(
    fake: OpenAIResponsesFake,
    workdir: Path,
    state: Path,
    prompt: str = "Create notes.txt and tell me what you did",
    *,
    history: list[Message] | None = None,
    session_id: str = "s1",
    run_id: str = "r1",
    **options: Any,
) -> ProviderRequest:
    return ProviderRequest(
        session_id=session_id,
        run_id=run_id,
        attempt=1,
        turn=1 + len(history or []) // 2,
        model=MODEL,
        system_prompt="You are a careful engineer.",
        history=list(history or []),
        messages=[Message(role="user", content=prompt)],
        options={"working_directory": str(workdir), "state_dir": str(state), **options},
        secrets={"OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": fake.base_url},
    )


PATCH = "*** Begin Patch\n*** Add File: notes.txt\n+written by codex\n*** End Patch\n"


def full_turn() -> list[Any]:
    """Reasoning + a shell command, then a patch, then the answer: three model responses."""
    return [
        turn(
            reasoning("I should look around first."),
            function_call("exec_command", {"cmd": "echo hello-from-shell"}),
            usage=Usage(
                input_tokens=100, cached_input_tokens=20, output_tokens=30, reasoning_tokens=12
            ),
        ),
        turn(
            custom_tool_call("apply_patch", PATCH),
            usage=Usage(input_tokens=150, cached_input_tokens=100, output_tokens=40),
        ),
        turn(
            message("I created notes.txt."),
            usage=Usage(input_tokens=200, cached_input_tokens=150, output_tokens=10),
        ),
    ]


def codex_processes(workdir: Path) -> list[tuple[int, str]]:
    """Live processes running the Codex binary, or anything it started (by cmdline), in
    ``workdir``: another test run on this machine may run the same binary at the same time."""
    binary = str(codex_binary())
    prefix = str(workdir.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state_ = f.read().rsplit(")", 1)[-1].split()[0]
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (
            state_ != "Z"
            and cwd.startswith(prefix)
            and (binary in cmdline or "codex-marker-sleep" in cmdline)
        ):
            found.append((int(entry), cmdline))
    return found


# --- the happy path ------------------------------------------------------------------------


@needs_codex
async def test_scripted_turn_yields_normalized_events_in_order(workdir: Path, state: Path) -> None:
    sink = RecordingSink()
    async with OpenAIResponsesFake() as fake:
        fake.script(*full_turn())
        result = await CodexProvider().stream(make_request(fake, workdir, state), sink)

    # Whether Codex streams a fast command's output live (before the command's completion)
    # depends on timing: under load it does. So the order is checked without live output, and
    # the live output, when there is some, is checked to sit inside its command.
    order = sink.collapsed(skip=(EventType.TOKEN_USAGE_UPDATED,), skip_kinds=("tool_output",))
    assert order == [
        "message_sent",
        "message_streamed:reasoning",
        "tool_call_started",
        "tool_call_completed",
        "tool_call_started",
        "tool_call_completed",
        "message_streamed",
        "message_received",
    ]
    sent = sink.of(EventType.MESSAGE_SENT)[0]
    assert sent["model"] == MODEL and sent["thread_id"] and sent["resumed"] is False
    reasoning_text = "".join(
        d["text"] for d in sink.of(EventType.MESSAGE_STREAMED) if d.get("kind") == "reasoning"
    )
    assert reasoning_text == "I should look around first."
    answer = "".join(
        d["text"] for d in sink.of(EventType.MESSAGE_STREAMED) if d.get("kind") != "reasoning"
    )
    assert answer == "I created notes.txt."

    command_done, patch_done = sink.of(EventType.TOOL_CALL_COMPLETED)
    command_started = sink.of(EventType.TOOL_CALL_STARTED)[0]
    live = [
        (i, d)
        for i, (t, d) in enumerate(sink.events)
        if t == EventType.MESSAGE_STREAMED and d.get("kind") == "tool_output"
    ]
    if live:
        started_at = sink.events.index((EventType.TOOL_CALL_STARTED, command_started))
        done_at = sink.events.index((EventType.TOOL_CALL_COMPLETED, command_done))
        assert all(started_at < i < done_at for i, _ in live)
        assert all(d["tool_call_id"] == command_started["id"] for _, d in live)
        assert "".join(d["text"] for _, d in live) in command_done["output"]
    assert command_done["name"] == "command_execution"
    assert "echo hello-from-shell" in command_done["input"]["command"]
    assert command_done["exit_code"] == 0
    assert "hello-from-shell" in command_done["output"]
    assert patch_done["name"] == "file_change"
    assert patch_done["changed_paths"] == [str(workdir / "notes.txt")]
    assert patch_done["changes"][0]["kind"] == "add"

    # The file exists in the working directory afterwards.
    assert (workdir / "notes.txt").read_text() == "written by codex\n"

    # Usage equals the fake's totals (input split into uncached + cached).
    expected = TokenUsage(input_tokens=450 - 270, output_tokens=80, cache_read_input_tokens=270)
    assert result.usage == expected
    assert result.usage.total_tokens == 450 + 80
    usage_events = sink.of(EventType.TOKEN_USAGE_UPDATED)
    assert len(usage_events) == 3
    assert usage_events[-1]["cached_input_tokens"] == 270
    assert usage_events[-1]["provider_input_tokens"] == 450
    assert usage_events[-1]["reasoning_output_tokens"] == 12
    assert usage_events[-1]["output_tokens"] == 80

    assert result.text == "I created notes.txt."
    assert result.stop_reason == "completed"
    assert result.model == MODEL
    assert result.metadata["codex_thread_id"] == sent["thread_id"]
    assert result.content == [
        {"type": "text", "text": "I created notes.txt."},
        {"type": THREAD_BLOCK, "thread_id": sent["thread_id"]},
    ]
    # No lifecycle events from the adapter: the workflow writes those.
    assert not {t for t, _ in sink.events} & {
        EventType.RUN_STARTED,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
    }


@needs_codex
async def test_request_carries_model_instructions_and_credentials(
    workdir: Path, state: Path
) -> None:
    async with OpenAIResponsesFake() as fake:
        fake.script(turn(message("ok")))
        await CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
    (req,) = fake.responses_requests
    body = req.json()
    assert req.headers["authorization"] == "Bearer sk-test-key"
    assert body["model"] == MODEL
    assert body["stream"] is True
    text = json.dumps(body["input"])
    assert "You are a careful engineer." in text  # system prompt → developer instructions
    assert "Create notes.txt and tell me what you did" in text


@needs_codex
async def test_web_search_and_live_command_output(workdir: Path, state: Path) -> None:
    sink = RecordingSink()
    slow = "for i in 1 2 3; do echo tick$i; sleep 0.3; done"
    async with OpenAIResponsesFake() as fake:
        fake.script(
            turn(
                web_search_call("pelican facts"),
                function_call("exec_command", {"cmd": slow, "yield_time_ms": 10000}),
            ),
            turn(message("Pelicans are great.")),
        )
        await CodexProvider().stream(make_request(fake, workdir, state), sink)
    search_started, command_started = sink.of(EventType.TOOL_CALL_STARTED)
    search_done, command_done = sink.of(EventType.TOOL_CALL_COMPLETED)
    assert search_started["name"] == search_done["name"] == "web_search"
    assert search_started["input"] == {"query": "pelican facts"}
    assert search_done["output"]["action"]["query"] == "pelican facts"
    assert command_done["output"] == "tick1\ntick2\ntick3\n"
    live = [d for d in sink.of(EventType.MESSAGE_STREAMED) if d.get("kind") == "tool_output"]
    assert live and all(d["tool_call_id"] == command_started["id"] for d in live)
    assert "tick3" in "".join(d["text"] for d in live)


@needs_codex
@pytest.mark.parametrize("decision", ["decline", "accept"])
async def test_approval_requests_follow_the_approval_decision(
    workdir: Path, state: Path, decision: str
) -> None:
    sink = RecordingSink()
    async with OpenAIResponsesFake() as fake:
        fake.script(
            turn(
                function_call(
                    "exec_command",
                    {
                        "cmd": "touch made-by-command",
                        "sandbox_permissions": "require_escalated",
                        "justification": "needs to write",
                    },
                )
            ),
            turn(message("done")),
        )
        await CodexProvider().stream(
            make_request(
                fake,
                workdir,
                state,
                approval_policy="on-request",
                approval_decision=decision,
                sandbox="read-only",
            ),
            sink,
        )
    (asked,) = sink.of(EventType.TOOL_APPROVAL_REQUESTED)
    assert asked["reason"] == "needs to write"
    if decision == "accept":
        assert sink.of(EventType.TOOL_APPROVAL_GRANTED)
        assert sink.of(EventType.TOOL_CALL_COMPLETED)
        assert (workdir / "made-by-command").exists()
    else:
        assert sink.of(EventType.TOOL_APPROVAL_DENIED)
        (failed,) = sink.of(EventType.TOOL_CALL_FAILED)
        assert failed["status"] == "declined"
        assert not (workdir / "made-by-command").exists()


# --- continuity ----------------------------------------------------------------------------


def continue_history(first: ProviderResult, prompt: str) -> list[Message]:
    return [
        Message(role="user", content=prompt),
        Message(role="assistant", content=first.content),
    ]


@needs_codex
async def test_second_run_continues_the_codex_thread(workdir: Path, state: Path) -> None:
    provider = CodexProvider()
    async with OpenAIResponsesFake() as fake:
        fake.script(*full_turn())
        first = await provider.stream(make_request(fake, workdir, state), RecordingSink())
        fake.script(
            turn(
                message("Yes, notes.txt holds one line."),
                usage=Usage(input_tokens=300, output_tokens=9),
            )
        )
        sink = RecordingSink()
        second = await provider.stream(
            make_request(
                fake,
                workdir,
                state,
                "Is the file still there?",
                history=continue_history(first, "Create notes.txt and tell me what you did"),
                run_id="r2",
            ),
            sink,
        )
        follow_up = fake.responses_requests[-1].json()

    thread_id = first.metadata["codex_thread_id"]
    assert second.metadata["codex_thread_id"] == thread_id
    assert second.metadata["resumed"] is True
    assert sink.of(EventType.MESSAGE_SENT)[0]["resumed"] is True
    # The fake sees the first turn's items in the second turn's input.
    items = follow_up["input"]
    types = [i.get("type") for i in items]
    assert "function_call" in types and "custom_tool_call" in types
    outputs = json.dumps([i for i in items if i.get("type") == "function_call_output"])
    assert "hello-from-shell" in outputs
    assert "I created notes.txt." in json.dumps(items)
    assert "Is the file still there?" in json.dumps(items[-1])
    assert second.usage == TokenUsage(input_tokens=300, output_tokens=9)


@needs_codex
async def test_unknown_thread_falls_back_to_a_transcript(workdir: Path, state: Path) -> None:
    history = [
        Message(role="user", content="Remember the word pelican."),
        Message(
            role="assistant",
            content=[
                {"type": "text", "text": "Noted: pelican."},
                {"type": THREAD_BLOCK, "thread_id": "01a20cda-0000-7000-8000-000000000000"},
            ],
        ),
    ]
    sink = RecordingSink()
    async with OpenAIResponsesFake() as fake:
        fake.script(turn(message("pelican")))
        result = await CodexProvider().stream(
            make_request(fake, workdir, state, "Which word?", history=history), sink
        )
        sent = json.dumps(fake.responses_requests[0].json()["input"])
    assert sink.of(EventType.ERROR_RECOVERED)
    assert result.metadata["resumed"] is False
    assert "Remember the word pelican." in sent and "Noted: pelican." in sent


# --- errors --------------------------------------------------------------------------------


@needs_codex
async def test_429_is_rate_limited_and_retryable_without_cli_retries(
    workdir: Path, state: Path
) -> None:
    async with OpenAIResponsesFake() as fake:
        fake.script(http_error(429, "Rate limit reached", retry_after=2))
        with pytest.raises(AsmError) as info:
            await CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
        assert len(fake.responses_requests) == 1  # the CLI's own retries are off
    assert info.value.code == "provider_rate_limited"
    assert info.value.retryable is True
    assert info.value.provider_error is not None
    assert info.value.provider_error.status_code == 429


@needs_codex
async def test_400_fails_at_once_as_invalid_input(workdir: Path, state: Path) -> None:
    started = time.monotonic()
    async with OpenAIResponsesFake() as fake:
        fake.script(http_error(400, "Unsupported parameter: 'frobnicate'"))
        with pytest.raises(AsmError) as info:
            await CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
        assert len(fake.responses_requests) == 1
    assert info.value.code == "invalid_input"
    assert info.value.retryable is False
    assert "frobnicate" in info.value.message
    assert time.monotonic() - started < 15


@needs_codex
@pytest.mark.parametrize(
    ("reply", "code", "retryable"),
    [
        (http_error(401, "Incorrect API key"), "provider_authentication_failed", False),
        (http_error(403, "Forbidden"), "provider_authentication_failed", False),
        (http_error(500, "boom"), "provider_unavailable", True),
        (http_error(503, "down"), "provider_unavailable", True),
        (http_error(529, "overloaded"), "provider_unavailable", True),
        (failed_turn("rate_limit_exceeded", "Rate limit reached"), "provider_rate_limited", True),
        (failed_turn("server_error", "oops"), "provider_unavailable", True),
    ],
    ids=["401", "403", "500", "503", "529", "failed-rate-limit", "failed-server-error"],
)
async def test_http_and_stream_failures_are_classified(
    workdir: Path, state: Path, reply: Any, code: str, retryable: bool
) -> None:
    async with OpenAIResponsesFake() as fake:
        fake.script(reply)
        with pytest.raises(AsmError) as info:
            await CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
    assert (info.value.code, info.value.retryable) == (code, retryable)


@needs_codex
async def test_a_5mb_html_503_is_unavailable_with_a_short_message(
    workdir: Path, state: Path
) -> None:
    page = html_error_page(5 * 1024 * 1024, echo="sk-test-key")  # make_request's key
    async with OpenAIResponsesFake() as fake:
        fake.script(html_error(503, page))
        with pytest.raises(AsmError) as info:
            await CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
    err = info.value
    assert (err.code, err.retryable) == ("provider_unavailable", True)
    assert len(err.message.encode()) <= MAX_MESSAGE_BYTES
    assert len(json.dumps(err.to_dict()).encode()) < 16 * 1024
    assert "sk-test-key" not in json.dumps(err.to_dict())


@needs_codex
async def test_a_stalled_stream_is_a_provider_timeout(workdir: Path, state: Path) -> None:
    async with OpenAIResponsesFake() as fake:
        fake.script(turn(message("partial"), hang=True))
        with pytest.raises(AsmError) as info:
            await CodexProvider().stream(
                make_request(fake, workdir, state, stream_idle_timeout_seconds=1), RecordingSink()
            )
    assert info.value.code == "provider_timeout"
    assert info.value.retryable is True


def test_classifier_reads_status_info_and_bodies() -> None:
    auth_body = json.dumps({"error": {"type": "authentication_error", "message": "bad key"}})
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"message": "x", "codexErrorInfo": {"httpConnectionFailed": {"httpStatusCode": 408}}},
            "provider_timeout",
        ),
        ({"message": "quota", "codexErrorInfo": "usageLimitExceeded"}, "provider_quota_exceeded"),
        ({"message": "too long", "codexErrorInfo": "contextWindowExceeded"}, "invalid_input"),
        ({"message": auth_body, "codexErrorInfo": "other"}, "provider_authentication_failed"),
        (
            {"message": "error sending request for url", "codexErrorInfo": None},
            "provider_unavailable",
        ),
        ({"message": "something odd"}, "provider_error"),
    ]
    for turn_error, code in cases:
        assert classify_turn_error(turn_error).code == code, turn_error
    slow = classify_turn_error(
        {
            "message": "Rate limit reached. Please try again in 1.5s.",
            "codexErrorInfo": "rateLimitExceeded",
        }
    )
    assert slow.provider_error is not None and slow.provider_error.retry_after == 1.5


def test_a_gateway_page_in_a_turn_error_is_unavailable_and_summed_up() -> None:
    page = "<html><body>" + "request timeout trace " * 250_000 + "</body></html>"
    for turn_error in (
        {"message": f"unexpected status 503 Service Unavailable: {page}"},
        {"message": page, "codexErrorInfo": {"other": {"httpStatusCode": 502}}},
    ):
        err = classify_turn_error(turn_error)
        assert (err.code, err.retryable) == ("provider_unavailable", True)
        assert "HTML page of" in err.message and len(err.message.encode()) <= MAX_MESSAGE_BYTES
        assert err.provider_error is not None and err.provider_error.message is not None
        assert len(err.provider_error.message.encode()) <= MAX_MESSAGE_BYTES


# --- cancellation --------------------------------------------------------------------------


async def _cancel_when(task: asyncio.Task[Any], ready: asyncio.Event) -> float:
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.monotonic() - started


@needs_codex
async def test_cancel_mid_stream_stops_within_2s_and_leaves_no_process(
    workdir: Path, state: Path
) -> None:
    async with OpenAIResponsesFake() as fake:
        fake.script(turn(reasoning("thinking slowly"), message("partial answer"), hang=True))
        task = asyncio.create_task(
            CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
        )
        elapsed = await _cancel_when(task, fake.stream_opened)
    assert elapsed < 2.0
    assert codex_processes(workdir) == []


@needs_codex
async def test_cancel_during_a_command_kills_the_command_too(workdir: Path, state: Path) -> None:
    # The command runs in its own PTY session, outside the CLI's process group.
    marker = workdir / "codex-marker-sleep"
    marker.write_text("#!/bin/sh\nwhile :; do sleep 0.1; done\n")
    marker.chmod(marker.stat().st_mode | stat.S_IXUSR)
    sink = RecordingSink()
    async with OpenAIResponsesFake() as fake:
        fake.script(
            turn(function_call("exec_command", {"cmd": f"{marker}", "yield_time_ms": 60000})),
            turn(message("never reached")),
        )
        task = asyncio.create_task(
            CodexProvider().stream(
                make_request(fake, workdir, state, sandbox="danger-full-access"), sink
            )
        )
        deadline = time.monotonic() + 30
        while not (
            sink.of(EventType.TOOL_CALL_STARTED)
            and any("codex-marker-sleep" in c for _, c in codex_processes(workdir))
        ):
            assert time.monotonic() < deadline, "the command never started"
            assert not task.done(), task
            await asyncio.sleep(0.05)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert codex_processes(workdir) == []
    assert not sink.of(EventType.TOOL_CALL_COMPLETED)


# --- configuration and isolation -----------------------------------------------------------


@needs_codex
async def test_the_cli_connects_only_to_the_configured_base_url(
    workdir: Path, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed: cannot observe the CLI's connections")
    log = tmp_path / "connect.log"
    wrapper = tmp_path / "codex-traced"
    wrapper.write_text(
        f'#!/bin/sh\nexec {strace} -f -qq -e trace=connect -o {log} {codex_binary()} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setattr(
        "agent_session_manager.activities.providers.codex._provider.codex_binary", lambda: wrapper
    )
    async with OpenAIResponsesFake() as fake:
        fake.script(*full_turn())
        await CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
        port = fake.base_url.rsplit(":", 1)[1].split("/")[0]
    inet = [line for line in log.read_text().splitlines() if "AF_INET" in line]
    assert inet, "strace saw no connection at all"
    for line in inet:
        assert f"sin_port=htons({port})" in line and "127.0.0.1" in line, line


@needs_codex
async def test_config_turns_off_retries_and_extra_traffic(workdir: Path, state: Path) -> None:
    async with OpenAIResponsesFake() as fake:
        fake.script(turn(message("ok")))
        await CodexProvider().stream(make_request(fake, workdir, state), RecordingSink())
        base_url = fake.base_url
    config = (state / "codex" / "s1" / "config.toml").read_text()
    import tomllib

    parsed = tomllib.loads(config)
    provider = parsed["model_providers"]["asm"]
    assert parsed["model_provider"] == "asm"
    assert provider["base_url"] == base_url
    assert provider["wire_api"] == "responses"
    assert provider["request_max_retries"] == 0 and provider["stream_max_retries"] == 0
    for feature in ("plugins", "remote_plugin", "apps"):
        assert parsed["features"][feature] is False
    assert parsed["analytics"]["enabled"] is False
    assert "sk-test-key" not in config  # the key stays in the environment


@pytest.mark.parametrize("where", ["missing", "nonexistent", "file"])
async def test_working_directory_is_required_and_validated(tmp_path: Path, where: str) -> None:
    options: dict[str, Any] = {}
    if where == "nonexistent":
        options["working_directory"] = str(tmp_path / "nope")
    elif where == "file":
        (tmp_path / "f.txt").write_text("x")
        options["working_directory"] = str(tmp_path / "f.txt")
    request = ProviderRequest(
        session_id="s",
        run_id="r",
        attempt=1,
        turn=1,
        model=None,
        system_prompt=None,
        history=[],
        messages=[Message(role="user", content="hi")],
        options=options,
        secrets={"OPENAI_API_KEY": "k"},
    )
    with pytest.raises(AsmError) as info:
        await CodexProvider().stream(request, RecordingSink())
    assert info.value.code == "invalid_input"
    assert info.value.retryable is False


async def test_invalid_sandbox_mode_is_invalid_input(workdir: Path, state: Path) -> None:
    request = ProviderRequest(
        session_id="s",
        run_id="r",
        attempt=1,
        turn=1,
        model=None,
        system_prompt=None,
        history=[],
        messages=[Message(role="user", content="hi")],
        options={"working_directory": str(workdir), "sandbox": "yolo"},
        secrets={"OPENAI_API_KEY": "k"},
    )
    with pytest.raises(AsmError) as info:
        await CodexProvider().stream(request, RecordingSink())
    assert info.value.code == "invalid_input"


async def test_missing_binary_names_the_pip_command(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "codex_cli_bin", None)  # import fails: extra not installed
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
        secrets={"OPENAI_API_KEY": "k"},
    )
    with pytest.raises(AsmError) as info:
        await CodexProvider().stream(request, RecordingSink())
    assert info.value.code == "provider_unavailable"
    assert info.value.retryable is False
    assert INSTALL_HINT in info.value.message
    assert INSTALL_HINT == "pip install 'agent-session-manager[codex]'"
    assert info.value.details["fix"] == INSTALL_HINT
