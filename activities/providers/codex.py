"""The ``codex`` provider: one run = one turn of the real Codex CLI, driven over ``app-server``.

Install: ``pip install 'agent-session-manager[codex]'`` (the CLI binary ships in the
``openai-codex-cli-bin`` wheel; nothing is downloaded at run time).

Why ``codex app-server`` and not ``codex exec --json``
    ``exec --json`` prints whole items only (an agent message appears when it is finished) and
    can only be stopped by killing it. The app-server protocol (JSON-RPC 2.0 over stdio, the
    one the official ``openai-codex`` SDK and the IDE extensions speak) streams the deltas
    the issue asks for — ``item/agentMessage/delta``, ``item/reasoning/summaryTextDelta`` —
    reports token usage per model response (``thread/tokenUsage/updated``), carries a
    structured error (``codexErrorInfo`` with the upstream ``httpStatusCode``) that we can
    classify without parsing prose, and has ``turn/interrupt`` so a cancelled run ends the
    turn cleanly before the process is killed. We speak the protocol directly (a few dozen
    lines) rather than through the ``openai-codex`` SDK, whose client is thread-based and
    synchronous: the activity must never block the event loop.

One run, step by step
    1. Validate ``options["working_directory"]`` (required; must exist and be a directory).
    2. Write the run's ``config.toml`` into the session's ``CODEX_HOME`` (see below): a custom
       model provider pointing at ``OPENAI_BASE_URL`` with ``wire_api = "responses"``,
       request and stream retries 0 (Temporal retries, visibly), and every feature that would
       open another connection off (plugins, remote plugins, apps, analytics, model
       discovery, request compression, unbounded reconnects, the app-server daemon).
    3. Start ``codex app-server`` in its own process group with a minimal environment:
       credentials come only from ``request.secrets`` (the worker's environment), ``HOME`` is
       the session's Codex home, so the CLI reads no user configuration.
    4. ``initialize`` → ``thread/start`` (or ``thread/resume``) → ``turn/start``, then map the
       notifications of that turn onto normalized events until ``turn/completed``.
    5. Close stdin; the app-server exits after flushing the thread's rollout to disk.

Session continuity
    A second run resumes the same Codex thread, so the model sees the earlier turns' real
    items (reasoning, commands and their output, patches), not a text summary. Two things
    make that possible without a store API change:

    * the thread id travels in the conversation: the assistant content this provider returns
      is ``[{"type": "text", "text": …}, {"type": "codex_thread", "thread_id": …}]`` and the
      next run finds the newest ``codex_thread`` block in ``request.history`` (only this
      provider ever sees these blocks: a session has one provider). It is also in
      ``ProviderResult.metadata["codex_thread_id"]``;
    * the thread's rollout lives in a per-session ``CODEX_HOME`` on the worker
      (``options["codex_home"]``, else ``<state_dir>/codex/<session_id>`` with ``state_dir``
      from ``options["state_dir"]``, ``$XDG_STATE_HOME/agent-session-manager`` or
      ``~/.local/state/agent-session-manager``). The config in it is rewritten every run.

    If the thread cannot be resumed (the run landed on another worker, the home was wiped),
    the provider starts a new thread whose first input is a transcript of ``request.history``
    and emits ``error_recovered`` saying so: continuity degrades to text, the run still works.

Events (the workflow writes the run lifecycle events; this adapter never emits ``run_*``)
    ``message_sent`` {thread_id, model, turn, resumed} at the start; agent message deltas →
    ``message_streamed`` {text, item_id} and each finished agent message → ``message_received``;
    reasoning summary / text deltas → ``message_streamed`` {kind: "reasoning"}; live command
    output → ``message_streamed`` {kind: "tool_output", tool_call_id}; command executions,
    file changes, MCP tool calls and web searches → ``tool_call_started`` /
    ``tool_call_completed`` (command, cwd, exit code, output, changed paths) or
    ``tool_call_failed`` when declined or failed without running; usage after each model
    response → ``token_usage_updated`` with the run's running totals (input, cached input,
    output, reasoning). Approval requests (only with an ``approval_policy`` other than
    ``never``) are answered with ``options["approval_decision"]`` (default ``decline`` —
    no human is attached to a run) and recorded as ``tool_approval_requested`` then
    ``…_granted`` / ``…_denied``.

Usage
    ``TokenUsage.input_tokens`` is the *uncached* input (OpenAI's ``input_tokens`` minus
    ``cached_tokens``) and ``cache_read_input_tokens`` the cached part, so ``total_tokens``
    counts every token once, as it does for Anthropic. The event also carries OpenAI's raw
    ``input_tokens`` as ``provider_input_tokens`` and ``reasoning_output_tokens``.

Errors
    The turn's ``codexErrorInfo`` (and the upstream HTTP status it forwards) classifies the
    failure: 429 → ``provider_rate_limited``; 5xx/529 and dropped streams →
    ``provider_unavailable``; 401/403 → ``provider_authentication_failed``; 400 →
    ``invalid_input``; idle stream timeouts → ``provider_timeout``; usage/budget limits →
    ``provider_quota_exceeded``. The CLI's own retries are off, so every retry is
    Temporal's. A missing binary is ``provider_unavailable`` (non-retryable) naming the
    ``pip install`` command.

Cancellation
    ``asyncio.CancelledError`` at any await: send ``turn/interrupt`` (bounded wait), then
    SIGTERM the process group and every descendant (commands run in their own PTY sessions,
    outside the group), SIGKILL after a short grace, reap, re-raise.

Options (``request.options``)
    ``working_directory`` (required), ``model`` (else ``request.model``, else the CLI's
    default), ``sandbox`` / ``sandbox_mode`` (``read-only`` | ``workspace-write`` (default) |
    ``danger-full-access``), ``approval_policy`` (``never`` (default) | ``on-request`` |
    ``untrusted``), ``approval_decision`` (``decline`` | ``accept``), ``reasoning_effort``,
    ``reasoning_summary``, ``stream_idle_timeout_seconds``, ``codex_home``, ``state_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from collections import deque
from dataclasses import dataclass, field
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

INSTALL_HINT = "pip install 'agent-session-manager[codex]'"
THREAD_BLOCK = "codex_thread"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
APPROVAL_POLICIES = ("never", "on-request", "untrusted")
APPROVAL_DECISIONS = ("decline", "accept")
REASONING_SUMMARIES = ("auto", "concise", "detailed", "none")

#: How long a cancelled run waits for ``turn/interrupt`` before killing: the whole cancel
#: path (interrupt + TERM grace + KILL) must finish well inside the 2 s the issue allows.
INTERRUPT_GRACE_S = 0.5
#: After ``turn/completed`` the app-server exits on stdin EOF once the rollout is flushed;
#: killing it sooner could lose the turn the next run wants to resume.
EXIT_GRACE_S = 5.0
#: JSON-RPC requests other than the turn itself (initialize, thread/start, …) are local and
#: fast; a CLI that does not answer within this is wedged.
RPC_TIMEOUT_S = 60.0

#: Features that open connections other than to the model provider (or retry forever).
_FEATURES_OFF = (
    "plugins",
    "remote_plugin",
    "apps",
    "tool_suggest",
    "skill_mcp_dependency_install",
    "enable_request_compression",
    "unbounded_connection_retries",
    "daemon_auto_start",
    "api_key_model_discovery",
    "system_proxy_fallback",
    "in_app_updates",
    "realtime_conversation",
    "browser_use",
    "browser_use_external",
    "computer_use",
    "image_generation",
    "memories",
)


# --- the binary --------------------------------------------------------------------------


def codex_binary() -> Path:
    """The Codex CLI from the ``openai-codex-cli-bin`` wheel, or ``provider_unavailable``."""
    try:
        from codex_cli_bin import (  # type: ignore[import-untyped, unused-ignore]
            bundled_codex_path,
        )
    except ImportError:
        raise unavailable("codex", INSTALL_HINT) from None
    try:
        return Path(bundled_codex_path())
    except FileNotFoundError as exc:
        raise unavailable("codex", INSTALL_HINT) from exc


def _codex_path_dirs() -> list[str]:
    # The wheel ships helpers (ripgrep) the CLI expects on PATH.
    try:
        from codex_cli_bin import (  # type: ignore[import-untyped, unused-ignore]
            bundled_path_dir,
        )
    except ImportError:  # pragma: no cover - the binary check runs first
        return []
    path_dir = bundled_path_dir()
    return [str(path_dir)] if path_dir else []


# --- JSON-RPC over stdio -------------------------------------------------------------------


class _RpcError(Exception):
    def __init__(self, method: str, payload: dict[str, Any]) -> None:
        self.method = method
        self.code = payload.get("code")
        self.message = str(payload.get("message", "")) or "error"
        self.data = payload.get("data")
        super().__init__(f"{method}: {self.message}")


class _ProcessExited(Exception):
    pass


@dataclass
class _AppServer:
    """A running ``codex app-server``: requests, notifications and server requests."""

    proc: asyncio.subprocess.Process
    on_server_request: Any  # async (method, params) -> result dict
    notifications: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    _pending: dict[int, tuple[str, asyncio.Future[Any]]] = field(default_factory=dict)
    _next_id: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls, argv: list[str], *, env: dict[str, str], cwd: str, on_server_request: Any
    ) -> _AppServer:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        server = cls(proc, on_server_request)
        server._tasks = [
            asyncio.create_task(server._read_stdout(), name="codex-stdout"),
            asyncio.create_task(server._read_stderr(), name="codex-stderr"),
        ]
        return server

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = strip_ansi(raw)
            if line:
                self.stderr_tail.append(line)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                if "method" in msg and "id" in msg:
                    task = asyncio.create_task(self._answer(msg))
                    self._tasks.append(task)
                elif "method" in msg:
                    self.notifications.put_nowait(msg)
                elif "id" in msg:
                    entry = self._pending.pop(msg["id"], None)
                    if entry is None or entry[1].done():
                        continue
                    method, fut = entry
                    if "error" in msg:
                        fut.set_exception(_RpcError(method, msg.get("error") or {}))
                    else:
                        fut.set_result(msg.get("result"))
        finally:
            for method, fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(_ProcessExited(method))
            self._pending.clear()
            self.notifications.put_nowait(None)  # end of stream

    async def _answer(self, msg: dict[str, Any]) -> None:
        try:
            result = await self.on_server_request(msg["method"], msg.get("params") or {})
            reply: dict[str, Any] = {"id": msg["id"], "result": result}
        except _RpcError as exc:
            reply = {"id": msg["id"], "error": {"code": exc.code, "message": exc.message}}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._write(reply)

    async def _write(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await self.proc.stdin.drain()

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Send a request and wait for its result (``_RpcError`` / ``_ProcessExited``)."""
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = (method, fut)
        try:
            await self._write({"id": self._next_id, "method": method, "params": params})
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(self._next_id, None)
            raise _ProcessExited(method) from exc
        return await asyncio.wait_for(fut, RPC_TIMEOUT_S)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"method": method}
        if params is not None:
            msg["params"] = params
        await self._write(msg)

    async def close(self) -> None:
        """Graceful: EOF on stdin, wait for exit (rollout flushed), then force."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), EXIT_GRACE_S)
        await self.kill()

    async def kill(self) -> None:
        """Forced: the process tree goes, the reader tasks are reaped."""
        try:
            await terminate_process_tree(self.proc)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.proc.stdin is not None and not self.proc.stdin.is_closing():
                self.proc.stdin.close()


# --- configuration -----------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render_config(base_url: str, *, stream_idle_timeout_ms: int | None) -> str:
    """The run's ``config.toml``: one provider (ours), no retries, nothing phoning home."""
    lines = [
        "# Written by agent-session-manager for every run; edits are overwritten.",
        'model_provider = "asm"',
        'approval_policy = "never"',
        'sandbox_mode = "workspace-write"',
        "check_for_update_on_startup = false",
        "",
        "[model_providers.asm]",
        'name = "agent-session-manager"',
        f"base_url = {_toml_str(base_url)}",
        'env_key = "OPENAI_API_KEY"',
        'wire_api = "responses"',
        # Retries belong to Temporal (visible in history, governed by the taxonomy).
        "request_max_retries = 0",
        "stream_max_retries = 0",
    ]
    if stream_idle_timeout_ms is not None:
        lines.append(f"stream_idle_timeout_ms = {stream_idle_timeout_ms}")
    lines += ["", "[features]"]
    lines += [f"{name} = false" for name in _FEATURES_OFF]
    lines += ["", "[analytics]", "enabled = false", ""]
    return "\n".join(lines)


def codex_home_for(request: ProviderRequest) -> Path:
    """The session's ``CODEX_HOME`` (threads persist here between runs)."""
    return session_state_dir(
        request.options, request.session_id, folder="codex", override="codex_home"
    )


def _write_atomic(path: Path, text: str) -> None:
    # Concurrent runs of one session share the home: never let one read a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --- request parsing ---------------------------------------------------------------------


def _choice(
    options: dict[str, Any], keys: tuple[str, ...], allowed: tuple[str, ...], default: str | None
) -> str | None:
    for key in keys:
        if options.get(key) is not None:
            value = str(options[key])
            if value not in allowed:
                raise invalid_input(
                    f"{key} must be one of {', '.join(allowed)}; got {value!r}",
                    option=key,
                    allowed=list(allowed),
                )
            return value
    return default


def previous_thread_id(history: list[Message]) -> str | None:
    """The thread id the newest earlier run of this session recorded, if any."""
    for msg in reversed(history):
        if msg.role != "assistant" or isinstance(msg.content, str):
            continue
        for block in reversed(msg.content):
            if block.get("type") == THREAD_BLOCK and block.get("thread_id"):
                return str(block["thread_id"])
    return None


def _turn_input(messages: list[Message], preamble: str | None) -> list[dict[str, Any]]:
    texts = [preamble] if preamble else []
    texts += [m.text() for m in messages if m.role == "user" and m.text().strip()]
    if not texts:
        raise invalid_input("a codex run needs a user message with text")
    return [{"type": "text", "text": t, "text_elements": []} for t in texts]


# --- error classification ----------------------------------------------------------------

_STATUS_CODES: dict[int, str] = {
    400: "invalid_input",
    401: "provider_authentication_failed",
    403: "provider_authentication_failed",
    404: "invalid_input",
    408: "provider_timeout",
    413: "invalid_input",
    422: "invalid_input",
    429: "provider_rate_limited",
    504: "provider_timeout",
}

_INFO_CODES: dict[str, str] = {
    "rateLimitExceeded": "provider_rate_limited",
    "usageLimitExceeded": "provider_quota_exceeded",
    "sessionBudgetExceeded": "provider_quota_exceeded",
    "serverOverloaded": "provider_unavailable",
    "internalServerError": "provider_unavailable",
    "flexUnavailable": "provider_unavailable",
    "unauthorized": "provider_authentication_failed",
    "badRequest": "invalid_input",
    "contextWindowExceeded": "invalid_input",
    "cyberPolicy": "policy_violation",
    "misalignmentPolicyViolation": "policy_violation",
    "tooManyDenials": "tool_permission_denied",
    "sandboxError": "tool_execution_failed",
    "threadRollbackFailed": "internal_error",
}

#: The ``error.type`` of an OpenAI JSON error body (Codex forwards 4xx bodies verbatim).
_BODY_TYPES: dict[str, str] = {
    "invalid_request_error": "invalid_input",
    "authentication_error": "provider_authentication_failed",
    "permission_error": "provider_authentication_failed",
    "rate_limit_error": "provider_rate_limited",
    "insufficient_quota": "provider_quota_exceeded",
    "server_error": "provider_unavailable",
    "overloaded_error": "provider_unavailable",
}

_RETRY_IN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


def _status_code(code: int) -> str:
    if code in _STATUS_CODES:
        return _STATUS_CODES[code]
    if code >= 500:
        return "provider_unavailable"  # 5xx and Anthropic-style 529
    return "provider_error"


def classify_turn_error(turn_error: dict[str, Any]) -> AsmError:
    """A Codex ``TurnError`` as a taxonomy error."""
    message = str(turn_error.get("message") or "the Codex turn failed")
    info = turn_error.get("codexErrorInfo")
    status: int | None = None
    variant: str | None = None
    if isinstance(info, dict) and info:
        variant, payload = next(iter(info.items()))
        if isinstance(payload, dict) and isinstance(payload.get("httpStatusCode"), int):
            status = payload["httpStatusCode"]
    elif isinstance(info, str):
        variant = info

    body: Any = None
    with contextlib.suppress(ValueError):
        body = json.loads(message)
    body_error = body.get("error") if isinstance(body, dict) else None
    human = message
    if isinstance(body_error, dict) and body_error.get("message"):
        human = str(body_error["message"])

    code: str
    if status is not None:
        code = _status_code(status)
    elif variant in _INFO_CODES:
        code = _INFO_CODES[variant]
    elif isinstance(body_error, dict) and (
        body_error.get("type") in _BODY_TYPES or body_error.get("code") in _BODY_TYPES
    ):
        code = (
            _BODY_TYPES.get(str(body_error.get("type")), "")
            or _BODY_TYPES[str(body_error.get("code"))]
        )
    elif re.search(r"timeout|timed out", message, re.IGNORECASE):
        code = "provider_timeout"
    elif variant in {
        "httpConnectionFailed",
        "responseStreamConnectionFailed",
        "responseStreamDisconnected",
        "responseTooManyFailedAttempts",
    } or re.search(
        r"stream disconnected|connection|error sending request|unexpected status 5",
        message,
        re.IGNORECASE,
    ):
        code = "provider_unavailable"
    else:
        code = "provider_error"

    retry_after: float | None = None
    if m := _RETRY_IN.search(message):
        retry_after = float(m.group(1)) / (1000 if m.group(2).lower() == "ms" else 1)
    return error(
        code,
        f"codex: {human}",
        details={"codex_error_info": info} if info is not None else {},
        provider_error=ProviderErrorInfo(
            status_code=status,
            retry_after=retry_after,
            body=body if body is not None else None,
            message=message,
        ),
    )


# --- the provider ------------------------------------------------------------------------


@dataclass
class _Usage:
    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0

    def add(self, breakdown: dict[str, Any]) -> None:
        self.input += int(breakdown.get("inputTokens") or 0)
        self.cached += int(breakdown.get("cachedInputTokens") or 0)
        self.output += int(breakdown.get("outputTokens") or 0)
        self.reasoning += int(breakdown.get("reasoningOutputTokens") or 0)

    def token_usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=max(self.input - self.cached, 0),
            output_tokens=self.output,
            cache_read_input_tokens=self.cached,
        )

    def event(self) -> dict[str, Any]:
        return {
            **self.token_usage().model_dump(),
            "cached_input_tokens": self.cached,
            "reasoning_output_tokens": self.reasoning,
            "provider_input_tokens": self.input,
        }


def _tool_name(item: dict[str, Any]) -> str | None:
    kind = item.get("type")
    if kind == "commandExecution":
        return "command_execution"
    if kind == "fileChange":
        return "file_change"
    if kind == "mcpToolCall":
        return f"mcp:{item.get('server')}/{item.get('tool')}"
    if kind == "webSearch":
        return "web_search"
    if kind == "dynamicToolCall":
        return f"dynamic:{item.get('tool')}"
    return None


def _tool_input(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "commandExecution":
        return {"command": item.get("command"), "cwd": item.get("cwd")}
    if kind == "fileChange":
        return {
            "changes": [
                {"path": c.get("path"), "kind": (c.get("kind") or {}).get("type")}
                for c in item.get("changes") or []
            ]
        }
    if kind == "webSearch":
        return {"query": item.get("query")}
    return {"arguments": item.get("arguments")}


def _tool_completion(item: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(failed, data) for a finished tool-like item."""
    kind = item.get("type")
    status = item.get("status")
    if kind == "commandExecution":
        exit_code = item.get("exitCode")
        data = {
            "output": item.get("aggregatedOutput") or "",
            "exit_code": exit_code,
            "status": status,
            "duration_ms": item.get("durationMs"),
            "is_error": exit_code not in (0, None) or status in ("failed", "declined"),
        }
        # A command that ran and exited non-zero is a completed call with an error result;
        # one that never ran (declined, sandbox refused) is a failed call.
        return status == "declined" or (status == "failed" and exit_code is None), data
    if kind == "fileChange":
        changes = item.get("changes") or []
        data = {
            "changed_paths": [c.get("path") for c in changes],
            "changes": [
                {
                    "path": c.get("path"),
                    "kind": (c.get("kind") or {}).get("type"),
                    "diff": c.get("diff"),
                }
                for c in changes
            ],
            "status": status,
        }
        return status in ("failed", "declined"), data
    if kind == "mcpToolCall":
        err = item.get("error")
        data = {
            "output": item.get("result"),
            "status": status,
            "duration_ms": item.get("durationMs"),
        }
        if err:
            data["error"] = err.get("message") if isinstance(err, dict) else str(err)
        return status == "failed", data
    if kind == "webSearch":
        return False, {
            "output": {"action": item.get("action"), "results": item.get("results")},
            "status": "completed",
        }
    return status == "failed", {
        "output": item.get("contentItems"),
        "status": status,
        "success": item.get("success"),
    }


class CodexProvider:
    """The Codex CLI (``codex app-server``) as a provider: see the module docstring."""

    name = "codex"
    default_model: str | None = None  # the CLI's own default model

    def capabilities(self) -> list[Capability]:
        """An agent that streams, runs commands, edits files and calls MCP tools."""
        return [
            Capability(name="streaming", type="sampling"),
            Capability(name="interrupt", type="sampling"),
            Capability(name="reasoning", type="sampling"),
            Capability(name="developer_instructions", type="prompt"),
            Capability(name="mcp_tools", type="tool"),
            Capability(name="shell", type="code_execution"),
            Capability(name="file_edit", type="file_access"),
            Capability(name="web_search", type="network_access"),
        ]

    async def stream(self, request: ProviderRequest, sink: EventSink) -> ProviderResult:
        """Run one Codex turn in the session's working directory (see the module docstring)."""
        options = request.options
        cwd = working_directory(options, "codex")
        sandbox = _choice(options, ("sandbox", "sandbox_mode"), SANDBOX_MODES, "workspace-write")
        approval = _choice(options, ("approval_policy",), APPROVAL_POLICIES, "never")
        decision = _choice(options, ("approval_decision",), APPROVAL_DECISIONS, "decline")
        summary = _choice(options, ("reasoning_summary",), REASONING_SUMMARIES, None)
        model = options.get("model") or request.model
        idle_ms: int | None = None
        if options.get("stream_idle_timeout_seconds") is not None:
            try:
                idle_ms = max(1, int(float(options["stream_idle_timeout_seconds"]) * 1000))
            except (TypeError, ValueError):
                raise invalid_input("stream_idle_timeout_seconds must be a number") from None
        binary = codex_binary()
        api_key = request.secrets.get("OPENAI_API_KEY")
        if not api_key:
            raise error(
                "provider_authentication_failed",
                "OPENAI_API_KEY is not set in the worker's environment",
                retryable=False,
            )
        base_url = request.secrets.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

        home = codex_home_for(request)
        (home / "home").mkdir(parents=True, exist_ok=True)
        _write_atomic(home / "config.toml", render_config(base_url, stream_idle_timeout_ms=idle_ms))
        env = {
            "PATH": os.pathsep.join([*_codex_path_dirs(), os.environ.get("PATH", os.defpath)]),
            "HOME": str(home / "home"),
            "CODEX_HOME": str(home),
            "OPENAI_API_KEY": api_key,
            "RUST_LOG": "error",
        }
        for key in ("LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME"):
            if key in os.environ:
                env[key] = os.environ[key]

        run = _Run(request, sink, decision or "decline")
        try:
            server = await _AppServer.start(
                [str(binary), "app-server", "--listen", "stdio://"],
                env=env,
                cwd=str(cwd),
                on_server_request=run.on_server_request,
            )
        except OSError as exc:  # not executable, wrong architecture, …
            raise error(
                "provider_unavailable",
                f"could not start the Codex CLI at {binary}: {exc}; reinstall with: {INSTALL_HINT}",
                details={"fix": INSTALL_HINT},
                retryable=False,
            ) from exc
        run.server = server
        try:
            result = await run.execute(
                cwd=cwd,
                model=model,
                sandbox=sandbox,
                approval=approval,
                effort=options.get("reasoning_effort"),
                summary=summary,
            )
        except asyncio.CancelledError:
            # Interrupt the turn (bounded), then the process tree goes whatever happened.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(run.interrupt(), INTERRUPT_GRACE_S)
            await server.kill()
            raise
        except BaseException:
            await server.kill()
            raise
        await server.close()
        return result


class _Run:
    """The state of one turn: ids, usage, texts, open tool calls."""

    def __init__(self, request: ProviderRequest, sink: EventSink, decision: str) -> None:
        self.request = request
        self.sink = sink
        self.decision = decision
        self.server: _AppServer | None = None
        self.thread_id: str | None = None
        self.turn_id: str | None = None
        self.usage = _Usage()
        self.messages: list[str] = []
        self.turn_error: dict[str, Any] | None = None
        self._indexes: dict[str, int] = {}

    def _index(self, item_id: Any) -> int:
        # The sink coalesces consecutive deltas with the same index and kind: one per item.
        return self._indexes.setdefault(str(item_id), len(self._indexes))

    # -- server → client requests --

    async def on_server_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method in ("item/commandExecution/requestApproval", "item/fileChange/requestApproval"):
            data = {
                "id": params.get("itemId"),
                "kind": "command_execution" if "commandExecution" in method else "file_change",
                "command": params.get("command"),
                "reason": params.get("reason"),
            }
            await self.sink.emit(EventType.TOOL_APPROVAL_REQUESTED, data)
            granted = self.decision == "accept"
            await self.sink.emit(
                EventType.TOOL_APPROVAL_GRANTED if granted else EventType.TOOL_APPROVAL_DENIED,
                {**data, "decided_by": "policy", "decision": self.decision},
            )
            return {"decision": self.decision}
        if method == "item/tool/requestUserInput":
            return {"answers": {}}
        if method == "mcpServer/elicitation/request":
            return {"action": "decline"}
        raise _RpcError(method, {"code": -32601, "message": f"{method} is not supported"})

    # -- the turn --

    async def execute(
        self,
        *,
        cwd: Path,
        model: str | None,
        sandbox: str | None,
        approval: str | None,
        effort: Any,
        summary: str | None,
    ) -> ProviderResult:
        assert self.server is not None
        server = self.server
        request = self.request
        try:
            await server.request(
                "initialize",
                {
                    "clientInfo": {
                        "name": "agent_session_manager",
                        "title": "agent-session-manager",
                        "version": "0.1.0",
                    },
                    "capabilities": {"experimentalApi": True},
                },
            )
            await server.notify("initialized")
            thread_params: dict[str, Any] = {
                "cwd": str(cwd),
                "sandbox": sandbox,
                "approvalPolicy": approval,
            }
            if model:
                thread_params["model"] = model
            if request.system_prompt:
                thread_params["developerInstructions"] = request.system_prompt

            preamble: str | None = None
            resumed = False
            previous = previous_thread_id(request.history)
            started: dict[str, Any] | None = None
            if previous:
                try:
                    started = await server.request(
                        "thread/resume", {"threadId": previous, **thread_params}
                    )
                    resumed = True
                except _RpcError as exc:
                    await self.sink.emit(
                        EventType.ERROR_RECOVERED,
                        {
                            "message": f"could not resume Codex thread {previous}: "
                            f"{exc.message}; continuing in a new thread with a transcript",
                            "previous_thread_id": previous,
                        },
                    )
            if started is None:
                started = await server.request("thread/start", thread_params)
                if request.history:
                    preamble = transcript(request.history)
            self.thread_id = str(started["thread"]["id"])
            used_model = started.get("model") or model

            await self.sink.emit(
                EventType.MESSAGE_SENT,
                {
                    "thread_id": self.thread_id,
                    "model": used_model,
                    "turn": request.turn,
                    "resumed": resumed,
                },
            )
            turn_params: dict[str, Any] = {
                "threadId": self.thread_id,
                "input": _turn_input(request.messages, preamble),
            }
            if effort:
                turn_params["effort"] = str(effort)
            if summary:
                turn_params["summary"] = summary
            turn = await server.request("turn/start", turn_params)
            self.turn_id = str(turn["turn"]["id"])
            final = await self._pump()
        except _RpcError as exc:
            raise error(
                "invalid_input" if exc.code in (-32600, -32602) else "provider_error",
                f"codex app-server rejected {exc.method}: {exc.message}",
                details={"rpc_code": exc.code, "stderr": list(server.stderr_tail)[-10:]},
            ) from exc
        except (_ProcessExited, TimeoutError) as exc:
            raise self._exited(exc) from exc

        status = final.get("status")
        if status == "failed" or (status != "completed" and self.turn_error):
            raise classify_turn_error(final.get("error") or self.turn_error or {})
        if status == "interrupted":
            raise error("cancelled", "the Codex turn was interrupted", retryable=False)

        text = self.messages[-1] if self.messages else ""
        content: list[dict[str, Any]] = []
        if text:
            content.append({"type": "text", "text": text})
        content.append({"type": THREAD_BLOCK, "thread_id": self.thread_id})
        return ProviderResult(
            text=text,
            content=content,
            stop_reason=str(status),
            usage=self.usage.token_usage(),
            model=used_model,
            metadata={
                "codex_thread_id": self.thread_id,
                "codex_turn_id": self.turn_id,
                "model": used_model,
                "resumed": resumed,
                "reasoning_output_tokens": self.usage.reasoning,
                "cached_input_tokens": self.usage.cached,
                "agent_messages": len(self.messages),
            },
        )

    def _exited(self, exc: Exception) -> AsmError:
        assert self.server is not None
        tail = list(self.server.stderr_tail)[-10:]
        what = "did not answer" if isinstance(exc, TimeoutError) else "exited"
        return error(
            "provider_error",
            f"the Codex CLI {what} before the turn completed" + (f": {tail[-1]}" if tail else ""),
            details={"stderr": tail, "returncode": self.server.proc.returncode},
        )

    async def interrupt(self) -> None:
        """Ask the CLI to stop the turn and wait for it to say so."""
        if self.server is None or not (self.thread_id and self.turn_id):
            return
        await self.server.request(
            "turn/interrupt", {"threadId": self.thread_id, "turnId": self.turn_id}
        )

    async def _pump(self) -> dict[str, Any]:
        """Map notifications to events until this turn completes; return the final turn."""
        assert self.server is not None
        queue = self.server.notifications
        while True:
            msg = await queue.get()
            if msg is None:
                raise _ProcessExited("turn")
            method = msg["method"]
            params = msg.get("params") or {}
            if params.get("turnId") not in (None, self.turn_id):
                continue  # another turn (a sub-agent's, say)
            if params.get("threadId") not in (None, self.thread_id):
                continue
            if method == "turn/completed":
                turn = params.get("turn") or {}
                if turn.get("id") == self.turn_id:
                    return turn
            elif method == "item/agentMessage/delta":
                await self.sink.emit(
                    EventType.MESSAGE_STREAMED,
                    {
                        "text": params.get("delta", ""),
                        "index": self._index(params.get("itemId")),
                        "item_id": params.get("itemId"),
                    },
                )
            elif method in ("item/reasoning/summaryTextDelta", "item/reasoning/textDelta"):
                await self.sink.emit(
                    EventType.MESSAGE_STREAMED,
                    {
                        "text": params.get("delta", ""),
                        "index": self._index(params.get("itemId")),
                        "item_id": params.get("itemId"),
                        "kind": "reasoning",
                    },
                )
            elif method == "item/commandExecution/outputDelta":
                # Live command output: clients render kinds other than None apart from the
                # answer, and a chatty long command keeps the sink's silence watchdog fed.
                await self.sink.emit(
                    EventType.MESSAGE_STREAMED,
                    {
                        "text": params.get("delta", ""),
                        "index": self._index(params.get("itemId")),
                        "tool_call_id": params.get("itemId"),
                        "kind": "tool_output",
                    },
                )
            elif method == "item/started":
                await self._item_started(params.get("item") or {})
            elif method == "item/completed":
                await self._item_completed(params.get("item") or {})
            elif method == "thread/tokenUsage/updated":
                last = (params.get("tokenUsage") or {}).get("last") or {}
                self.usage.add(last)
                await self.sink.emit(EventType.TOKEN_USAGE_UPDATED, self.usage.event())
            elif method == "error":
                err = params.get("error") or {}
                if params.get("willRetry"):
                    await self.sink.emit(
                        EventType.ERROR_OCCURRED,
                        {
                            "message": err.get("message"),
                            "will_retry": True,
                            "codex_error_info": err.get("codexErrorInfo"),
                        },
                    )
                else:
                    self.turn_error = err

    async def _item_started(self, item: dict[str, Any]) -> None:
        name = _tool_name(item)
        if name is not None:
            await self.sink.emit(
                EventType.TOOL_CALL_STARTED,
                {"id": item.get("id"), "name": name, "input": _tool_input(item)},
            )

    async def _item_completed(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "agentMessage":
            text = str(item.get("text") or "")
            self.messages.append(text)
            await self.sink.emit(
                EventType.MESSAGE_RECEIVED,
                {"text": text, "item_id": item.get("id"), "phase": item.get("phase")},
            )
            return
        name = _tool_name(item)
        if name is None:
            return
        failed, data = _tool_completion(item)
        payload = {"id": item.get("id"), "name": name, "input": _tool_input(item), **data}
        if failed:
            payload.setdefault("error", f"{name} {data.get('status') or 'failed'}")
            await self.sink.emit(EventType.TOOL_CALL_FAILED, payload)
        else:
            await self.sink.emit(EventType.TOOL_CALL_COMPLETED, payload)
