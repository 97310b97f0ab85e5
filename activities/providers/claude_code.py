"""The ``claude-code`` provider: one run = one turn of Claude Code, driven by ``claude-agent-sdk``.

Install: ``pip install 'agent-session-manager[claude-code]'`` (``claude-agent-sdk`` bundles the
Claude Code CLI; nothing is downloaded at run time).

How it drives the CLI
    ``ClaudeSDKClient`` speaks Claude Code's stream-json control protocol (initialize,
    interrupt, typed messages); we hand it our own :class:`Transport` for the bundled binary
    instead of the SDK's subprocess transport, for three reasons:

    * the environment is ours alone — the SDK's transport merges the worker's whole
      ``os.environ`` into the CLI (and so into every Bash command the agent runs); ours passes
      a minimal environment plus the credentials from ``request.secrets``;
    * the CLI starts in its own process group (``start_new_session=True``) and cancellation
      kills the whole tree at once — the SDK's ``close()`` waits up to 5 s before SIGTERM;
    * every await in ``close()`` is bounded by our own constants.

    The command line uses the CLI's documented flags (``--output-format stream-json
    --input-format stream-json --verbose --include-partial-messages``, ``--allowedTools``,
    ``--disallowedTools``, ``--permission-mode``, ``--max-turns``, ``--model``,
    ``--append-system-prompt``, ``--resume``, ``--setting-sources``).

Network: only the configured base URL
    ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY`` come from ``request.secrets`` (the worker's
    environment); ``HOME`` is the session's own directory (so no user settings, credentials or
    plugins are read); ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (no telemetry, error
    reporting, auto-update or feature flags), ``CLAUDE_CODE_MAX_RETRIES=0`` and
    ``CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK=1`` (a failed request fails the run: retries
    are Temporal's), and ``CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1`` — without it the CLI
    answers any 400 by re-sending the request with fewer beta headers, so a bad request would
    not fail at once (``options["experimental_betas"] = True`` restores them).

Session continuity
    A second run resumes the Claude Code session of the previous one (``--resume``). The
    session id travels in the conversation: the assistant content returned here is
    ``[{"type": "text", …}, {"type": "claude_code_session", "session_id": …}]`` and the next
    run finds the newest such block in ``request.history`` (also in
    ``ProviderResult.metadata["claude_code_session_id"]``). Claude Code keeps its transcript
    under ``$HOME/.claude/projects``, so ``HOME`` is a per-session directory on the worker
    (``options["claude_home"]``, else ``<state_dir>/claude-code/<session_id>``; see
    :mod:`activities.providers.agent_cli`, shared with the ``codex`` provider). When the
    transcript is not there (another worker, a wiped state dir), the run starts a new
    session whose prompt carries a transcript of the history, and emits ``error_recovered``.

Events (never ``run_*``: the workflow writes lifecycle events)
    ``message_sent`` {session_id, model} once the CLI reports its session; partial messages →
    ``message_streamed`` (text deltas; thinking deltas with ``kind: "reasoning"``); each
    finished text block → ``message_received``; ``tool_use`` blocks → ``tool_call_started``
    and their ``tool_result`` → ``tool_call_completed`` (or ``tool_call_failed`` when
    ``is_error``) with the tool's output; usage after every model response and, at the end,
    the CLI's totals with ``total_cost_usd`` and ``num_turns`` → ``token_usage_updated``.

Errors
    A result with ``is_error`` is classified by its ``api_error_status`` (429 →
    ``provider_rate_limited``, 529/5xx → ``provider_unavailable``, 401/403 →
    ``provider_authentication_failed``, 400 → ``invalid_input``, 408/504 →
    ``provider_timeout``), else by the assistant message's ``error`` kind. Hitting
    ``max_turns`` is not an error: the run completes with ``stop_reason="max_turns"``. A
    missing extra or a bundled binary that cannot be started is ``provider_unavailable``
    (non-retryable) naming the ``pip install`` command.

Cancellation
    ``asyncio.CancelledError``: send ``interrupt`` (bounded), kill the process tree, close the
    client, re-raise.

Options (``request.options``)
    ``working_directory`` (required, an existing directory), ``model`` (else
    ``request.model``), ``allowed_tools`` / ``disallowed_tools`` (list or comma-separated),
    ``permission_mode`` (``default`` | ``acceptEdits`` | ``plan`` | ``dontAsk`` | ``auto`` |
    ``bypassPermissions`` — the last is refused by the CLI when running as root),
    ``max_turns``, ``setting_sources``, ``api_timeout_seconds``, ``experimental_betas``,
    ``claude_home``, ``state_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections import deque
from pathlib import Path
from typing import Any

from agent_session_manager.activities.providers.agent_cli import (
    LINE_LIMIT,
    invalid_input,
    session_state_dir,
    strip_ansi,
    terminate_process_tree,
    transcript,
    working_directory,
)
from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
    unavailable,
)
from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.contract import Message
from agent_session_manager.core.errors import AsmError, ProviderErrorInfo, error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage

try:  # the extra may be missing: the provider must still load and say what to install
    from claude_agent_sdk import Transport as _SdkTransport
except ImportError:  # pragma: no cover - exercised by the missing-extra test via stream()
    _SdkTransport = object  # type: ignore[assignment,misc]

INSTALL_HINT = "pip install 'agent-session-manager[claude-code]'"
SESSION_BLOCK = "claude_code_session"

PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto")
SETTING_SOURCES = ("user", "project", "local")

#: Budget for the ``interrupt`` control request on cancellation, and the SIGTERM grace after
#: it (in ``terminate_process_tree``): together well inside the 2 s a cancel may take.
INTERRUPT_GRACE_S = 0.5
#: After the result the CLI exits on stdin EOF once its transcript is flushed; killing it
#: sooner could lose the turn the next run resumes.
EXIT_GRACE_S = 5.0


def claude_binary() -> Path:
    """The Claude Code CLI bundled in ``claude-agent-sdk``, or ``provider_unavailable``."""
    try:
        import claude_agent_sdk
    except ImportError:
        raise unavailable("claude-code", INSTALL_HINT) from None
    name = "claude.exe" if sys.platform == "win32" else "claude"
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / name
    if not path.is_file():
        raise unavailable("claude-code", INSTALL_HINT)
    return path


# --- the transport -------------------------------------------------------------------------


class CliTransport(_SdkTransport):
    """The bundled CLI as a ``claude_agent_sdk.Transport``: our env, our process group."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: str) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=50)
        self._stderr_task: asyncio.Task[None] | None = None
        self._closing = False

    async def connect(self) -> None:
        try:
            self.proc = await self._spawn()
        except OSError as exc:  # not executable, wrong architecture, …
            # A broken install, as for the codex provider: say what to reinstall, do not retry.
            # (Raised as the domain error: ClaudeSDKClient.connect lets it through, where a
            # CLIConnectionError would become a generic provider_error.)
            raise error(
                "provider_unavailable",
                f"could not start Claude Code at {self.argv[0]}: {exc}; "
                f"reinstall with: {INSTALL_HINT}",
                details={"fix": INSTALL_HINT},
                retryable=False,
            ) from exc
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="claude-stderr")

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            limit=LINE_LIMIT,
        )

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = strip_ansi(raw)
            if line:
                self.stderr_tail.append(line)

    async def write(self, data: str) -> None:
        from claude_agent_sdk import CLIConnectionError

        if self.proc is None or self.proc.stdin is None or self.proc.stdin.is_closing():
            raise CLIConnectionError("Claude Code is not running")
        try:
            self.proc.stdin.write(data.encode())
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise CLIConnectionError(f"Claude Code stopped reading: {exc}") from exc

    def read_messages(self) -> Any:
        return self._read()

    async def _read(self) -> Any:
        from claude_agent_sdk import ProcessError

        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                data = json.loads(raw)
            except ValueError:
                continue  # not protocol: the CLI's own diagnostics
            if isinstance(data, dict):
                yield data
        returncode = await self.proc.wait()
        if returncode != 0 and not self._closing:
            tail = "\n".join(list(self.stderr_tail)[-10:])
            raise ProcessError(
                "Claude Code exited before the turn completed",
                exit_code=returncode,
                stderr=tail or None,
            )

    async def end_input(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    def is_ready(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def close(self) -> None:
        """Graceful: stdin EOF, a bounded wait for exit, then the process tree goes."""
        self._closing = True
        if self.proc is None:
            return
        await self.end_input()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), EXIT_GRACE_S)
        await self.kill()

    async def kill(self) -> None:
        """Forced: SIGTERM/SIGKILL the process group and every descendant, reap."""
        self._closing = True
        if self.proc is None:
            return
        try:
            await terminate_process_tree(self.proc)
        finally:
            if self.proc.stdin is not None and not self.proc.stdin.is_closing():
                self.proc.stdin.close()
            if self._stderr_task is not None:
                self._stderr_task.cancel()
                await asyncio.gather(self._stderr_task, return_exceptions=True)


# --- request parsing ---------------------------------------------------------------------


def _tool_list(options: dict[str, Any], key: str) -> list[str]:
    value = options.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return [t.strip() for t in value if t.strip()]
    raise invalid_input(f"{key} must be a list of tool names", option=key)


def _max_turns(options: dict[str, Any]) -> int | None:
    value = options.get("max_turns")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_input("max_turns must be a positive integer", option="max_turns")
    return value


def previous_session_id(history: list[Message]) -> str | None:
    """The Claude Code session id the newest earlier run recorded, if any."""
    for msg in reversed(history):
        if msg.role != "assistant" or isinstance(msg.content, str):
            continue
        for block in reversed(msg.content):
            if block.get("type") == SESSION_BLOCK and block.get("session_id"):
                return str(block["session_id"])
    return None


def claude_home_for(request: ProviderRequest) -> Path:
    """The session's ``HOME`` for the CLI (its transcripts persist here between runs)."""
    return session_state_dir(
        request.options, request.session_id, folder="claude-code", override="claude_home"
    )


def _has_transcript(home: Path, session_id: str) -> bool:
    if not re.fullmatch(r"[A-Za-z0-9-]+", session_id):
        return False
    return any((home / ".claude" / "projects").glob(f"*/{session_id}.jsonl"))


# --- error classification ----------------------------------------------------------------

_STATUS_CODES: dict[int, str] = {
    400: "invalid_input",
    401: "provider_authentication_failed",
    402: "provider_quota_exceeded",
    403: "provider_authentication_failed",
    404: "invalid_input",
    408: "provider_timeout",
    413: "invalid_input",
    422: "invalid_input",
    429: "provider_rate_limited",
    504: "provider_timeout",
}

#: ``AssistantMessage.error`` kinds (the CLI's own classification of an API failure).
_ERROR_KINDS: dict[str, str] = {
    "rate_limit": "provider_rate_limited",
    "server_error": "provider_unavailable",
    "authentication_failed": "provider_authentication_failed",
    "billing_error": "provider_quota_exceeded",
    "invalid_request": "invalid_input",
}


def classify_result(
    *,
    status: int | None,
    error_kind: str | None,
    message: str,
    subtype: str | None = None,
    errors: list[str] | None = None,
) -> AsmError:
    """A failed Claude Code result as a taxonomy error."""
    if status is not None:
        code = _STATUS_CODES.get(status) or (
            "provider_unavailable" if status >= 500 else "provider_error"
        )
    elif error_kind in _ERROR_KINDS:
        code = _ERROR_KINDS[error_kind]
    elif re.search(r"timeout|timed out", message, re.IGNORECASE):
        code = "provider_timeout"
    elif re.search(r"overloaded|connection|ECONNREFUSED|socket", message, re.IGNORECASE):
        code = "provider_unavailable"
    else:
        code = "provider_error"
    return error(
        code,
        f"claude-code: {message}",
        details={"subtype": subtype, "errors": errors or [], "error_kind": error_kind},
        provider_error=ProviderErrorInfo(status_code=status, message=message),
    )


# --- the provider ------------------------------------------------------------------------


def _usage_of(raw: dict[str, Any] | None) -> TokenUsage:
    raw = raw or {}
    return TokenUsage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_creation_input_tokens=int(raw.get("cache_creation_input_tokens") or 0),
        cache_read_input_tokens=int(raw.get("cache_read_input_tokens") or 0),
    )


def _result_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(c.get("text", ""))
            for c in content
            if isinstance(c, dict) and c.get("type") == "text"
        )
    return json.dumps(content)


class ClaudeCodeProvider:
    """Claude Code (via ``claude-agent-sdk``) as a provider: see the module docstring."""

    name = "claude-code"
    default_model: str | None = None  # the CLI's own default model

    def capabilities(self) -> list[Capability]:
        """An agent that streams, uses tools, runs commands, edits files, browses the web."""
        return [
            Capability(name="streaming", type="sampling"),
            Capability(name="interrupt", type="sampling"),
            Capability(name="extended_thinking", type="sampling"),
            Capability(name="system_prompts", type="prompt"),
            Capability(name="tool_use", type="tool"),
            Capability(name="bash", type="code_execution"),
            Capability(name="file_edit", type="file_access"),
            Capability(name="web_fetch", type="network_access"),
        ]

    async def stream(self, request: ProviderRequest, sink: EventSink) -> ProviderResult:
        """Run one Claude Code turn in the session's working directory."""
        options = request.options
        cwd = working_directory(options, "claude-code")
        permission_mode = options.get("permission_mode")
        if permission_mode is not None and permission_mode not in PERMISSION_MODES:
            raise invalid_input(
                f"permission_mode must be one of {', '.join(PERMISSION_MODES)}",
                option="permission_mode",
            )
        allowed = _tool_list(options, "allowed_tools")
        disallowed = _tool_list(options, "disallowed_tools")
        max_turns = _max_turns(options)
        sources = options.get("setting_sources")
        if sources is not None and (
            not isinstance(sources, list) or any(s not in SETTING_SOURCES for s in sources)
        ):
            raise invalid_input(
                f"setting_sources must be a list drawn from {', '.join(SETTING_SOURCES)}",
                option="setting_sources",
            )
        model = options.get("model") or request.model
        binary = claude_binary()
        api_key = request.secrets.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise error(
                "provider_authentication_failed",
                "ANTHROPIC_API_KEY is not set in the worker's environment",
                retryable=False,
            )

        import claude_agent_sdk
        from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError

        home = claude_home_for(request)
        home.mkdir(parents=True, exist_ok=True)

        resume = previous_session_id(request.history)
        preamble: str | None = None
        if resume and not _has_transcript(home, resume):
            await sink.emit(
                EventType.ERROR_RECOVERED,
                {
                    "message": f"Claude Code session {resume} is not on this worker; "
                    "continuing in a new session with a transcript",
                    "previous_session_id": resume,
                },
            )
            resume = None
        if resume is None and request.history:
            preamble = transcript(request.history)
        texts = [preamble] if preamble else []
        texts += [m.text() for m in request.messages if m.role == "user" and m.text().strip()]
        if not texts:
            raise invalid_input("a claude-code run needs a user message with text")

        argv = [
            str(binary),
            "--output-format",
            "stream-json",
            "--input-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
        ]
        if request.system_prompt:
            argv += ["--append-system-prompt", request.system_prompt]
        if allowed:
            argv += ["--allowedTools", ",".join(allowed)]
        if disallowed:
            argv += ["--disallowedTools", ",".join(disallowed)]
        if max_turns:
            argv += ["--max-turns", str(max_turns)]
        if model:
            argv += ["--model", str(model)]
        if permission_mode:
            argv += ["--permission-mode", permission_mode]
        if resume:
            argv.append(f"--resume={resume}")  # '=' form: a value can never become a flag
        if sources is not None:
            argv.append(f"--setting-sources={','.join(sources)}")

        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(home),
            "ANTHROPIC_API_KEY": api_key,
            "CLAUDE_CODE_ENTRYPOINT": "sdk-py",
            "CLAUDE_AGENT_SDK_VERSION": claude_agent_sdk.__version__,
            "CLAUDE_AGENT_SDK_CLIENT_APP": "agent-session-manager",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "ENABLE_CLAUDEAI_MCP_SERVERS": "false",
        }
        if not options.get("experimental_betas"):
            env["CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS"] = "1"
        if request.secrets.get("ANTHROPIC_BASE_URL"):
            env["ANTHROPIC_BASE_URL"] = request.secrets["ANTHROPIC_BASE_URL"]
        if options.get("api_timeout_seconds") is not None:
            try:
                timeout_ms = max(1, int(float(options["api_timeout_seconds"]) * 1000))
            except (TypeError, ValueError):
                raise invalid_input("api_timeout_seconds must be a number") from None
            env["API_TIMEOUT_MS"] = str(timeout_ms)
        for key in ("LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL"):
            if key in os.environ:
                env[key] = os.environ[key]

        transport = CliTransport(argv, env=env, cwd=str(cwd))
        client = ClaudeSDKClient(ClaudeAgentOptions(), transport=transport)
        run = _Run(request, sink, resumed=resume is not None)
        try:
            await client.connect()
            await client.query("\n\n".join(texts))
            async for message in client.receive_response():
                await run.handle(message)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(client.interrupt(), INTERRUPT_GRACE_S)
            await transport.kill()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(client.disconnect(), 1.0)
            raise
        except ClaudeSDKError as exc:
            await transport.kill()
            with contextlib.suppress(Exception):
                await client.disconnect()
            tail = list(transport.stderr_tail)[-10:]
            raise error(
                "provider_error",
                f"Claude Code failed: {exc}".splitlines()[0],
                details={"stderr": tail, "exception": type(exc).__name__},
            ) from exc
        except BaseException:
            await transport.kill()
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise
        await client.disconnect()
        return await run.finish()


class _Run:
    """The state of one turn: session, usage, texts, open tool calls."""

    def __init__(self, request: ProviderRequest, sink: EventSink, *, resumed: bool) -> None:
        self.request = request
        self.sink = sink
        self.resumed = resumed
        self.session_id: str | None = None
        self.model: str | None = None
        self.texts: list[str] = []
        self.tools: dict[str, dict[str, Any]] = {}
        self.last_error_kind: str | None = None
        self.result: Any = None
        self.usage = TokenUsage()
        self._message_usage: dict[str, Any] = {}

    async def handle(self, message: Any) -> None:
        from claude_agent_sdk import (
            AssistantMessage,
            ResultMessage,
            StreamEvent,
            SystemMessage,
            UserMessage,
        )

        if isinstance(message, StreamEvent):
            await self._stream_event(message.event, message.parent_tool_use_id)
        elif isinstance(message, AssistantMessage):
            await self._assistant(message)
        elif isinstance(message, UserMessage):
            await self._user(message)
        elif isinstance(message, SystemMessage):
            if message.subtype == "init" and self.session_id is None:
                self.session_id = str(message.data.get("session_id") or "") or None
                self.model = message.data.get("model")
                await self.sink.emit(
                    EventType.MESSAGE_SENT,
                    {
                        "session_id": self.session_id,
                        "model": self.model,
                        "turn": self.request.turn,
                        "resumed": self.resumed,
                    },
                )
        elif isinstance(message, ResultMessage):
            self.result = message

    async def _stream_event(self, event: dict[str, Any], parent: str | None) -> None:
        kind = event.get("type")
        extra = {"parent_tool_use_id": parent} if parent else {}
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                await self.sink.emit(
                    EventType.MESSAGE_STREAMED,
                    {"text": delta.get("text", ""), "index": event.get("index"), **extra},
                )
            elif delta.get("type") == "thinking_delta":
                await self.sink.emit(
                    EventType.MESSAGE_STREAMED,
                    {
                        "text": delta.get("thinking", ""),
                        "index": event.get("index"),
                        "kind": "reasoning",
                        **extra,
                    },
                )
        elif kind == "message_start":
            self._message_usage = dict((event.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            # Output is cumulative in message_delta; newer APIs repeat input/cache counts.
            self._message_usage.update(
                {k: v for k, v in (event.get("usage") or {}).items() if isinstance(v, int)}
            )
        elif kind == "message_stop" and self._message_usage:
            self.usage = self.usage + _usage_of(self._message_usage)
            self._message_usage = {}
            await self.sink.emit(EventType.TOKEN_USAGE_UPDATED, self.usage.model_dump())

    async def _assistant(self, message: Any) -> None:
        from claude_agent_sdk import ServerToolUseBlock, TextBlock, ToolUseBlock

        if message.error:
            self.last_error_kind = str(message.error)
        top_level = message.parent_tool_use_id is None
        for block in message.content:
            if isinstance(block, TextBlock) and top_level and not message.error:
                self.texts.append(block.text)
                await self.sink.emit(
                    EventType.MESSAGE_RECEIVED,
                    {"text": block.text, "message_id": message.message_id},
                )
            elif isinstance(block, ToolUseBlock | ServerToolUseBlock):
                call = {"id": block.id, "name": block.name, "input": block.input}
                if not top_level:
                    call["parent_tool_use_id"] = message.parent_tool_use_id
                self.tools[block.id] = call
                await self.sink.emit(EventType.TOOL_CALL_STARTED, call)

    async def _user(self, message: Any) -> None:
        from claude_agent_sdk import ToolResultBlock

        if isinstance(message.content, str):
            return
        for block in message.content:
            if not isinstance(block, ToolResultBlock):
                continue
            call = self.tools.pop(block.tool_use_id, {"id": block.tool_use_id, "name": None})
            output = _result_text(block.content)
            data: dict[str, Any] = {**call, "output": output, "is_error": bool(block.is_error)}
            if isinstance(message.tool_use_result, dict):
                data["result"] = message.tool_use_result
            if block.is_error:
                await self.sink.emit(EventType.TOOL_CALL_FAILED, {**data, "error": output})
            else:
                await self.sink.emit(EventType.TOOL_CALL_COMPLETED, data)

    async def finish(self) -> ProviderResult:
        result = self.result
        if result is None:
            raise error("provider_error", "Claude Code ended without a result")
        session_id = result.session_id or self.session_id
        usage = _usage_of(result.usage) if result.usage else self.usage
        await self.sink.emit(
            EventType.TOKEN_USAGE_UPDATED,
            {
                **usage.model_dump(),
                "total_cost_usd": result.total_cost_usd,
                "num_turns": result.num_turns,
                "final": True,
            },
        )
        stop_reason = result.stop_reason
        if result.is_error:
            if result.subtype == "error_max_turns":
                stop_reason = "max_turns"
            elif result.subtype == "error_max_budget_usd":
                stop_reason = "max_budget_usd"
            else:
                raise classify_result(
                    status=result.api_error_status,
                    error_kind=self.last_error_kind,
                    message=result.result or "; ".join(result.errors or []) or result.subtype,
                    subtype=result.subtype,
                    errors=result.errors,
                )
        text = (result.result if not result.is_error else None) or (
            self.texts[-1] if self.texts else ""
        )
        content: list[dict[str, Any]] = []
        if text:
            content.append({"type": "text", "text": text})
        content.append({"type": SESSION_BLOCK, "session_id": session_id})
        return ProviderResult(
            text=text,
            content=content,
            stop_reason=stop_reason,
            usage=usage,
            model=self.model,
            metadata={
                "claude_code_session_id": session_id,
                "model": self.model,
                "num_turns": result.num_turns,
                "total_cost_usd": result.total_cost_usd,
                "duration_ms": result.duration_ms,
                "terminal_reason": result.terminal_reason,
                "resumed": self.resumed,
            },
        )
