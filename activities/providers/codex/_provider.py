"""The ``codex`` provider: one run = one turn of the real Codex CLI, driven over ``app-server``.

Install: ``pip install 'agent-session-manager[codex]'`` (the CLI binary ships in the
``openai-codex-cli-bin`` wheel; nothing is downloaded at run time).

One run, step by step
    1. Read the options (:mod:`._options`; ``working_directory`` is required and must exist).
    2. Write the run's ``config.toml`` into the session's ``CODEX_HOME`` (:mod:`._session`):
       a custom model provider pointing at ``OPENAI_BASE_URL`` with ``wire_api =
       "responses"``, request and stream retries 0 (Temporal retries, visibly), and every
       feature that would open another connection off (:mod:`._transport`).
    3. Start ``codex app-server`` in its own process group with a minimal environment:
       credentials come only from ``request.secrets`` (the worker's environment), ``HOME`` is
       the session's Codex home, so the CLI reads no user configuration.
    4. ``initialize`` → ``thread/start`` (or ``thread/resume``) → ``turn/start``, then map the
       notifications of that turn onto normalized events (:mod:`._events`) until
       ``turn/completed``; a failed turn is classified by :mod:`._errors`.
    5. Close stdin; the app-server exits after flushing the thread's rollout to disk.

    When the previous thread cannot be resumed, the new thread's first input is a transcript
    of the history and ``error_recovered`` says so: continuity degrades to text, the run still
    works. A missing binary is ``provider_unavailable`` (non-retryable) naming the ``pip
    install`` command.

Cancellation
    ``asyncio.CancelledError`` at any await: send ``turn/interrupt`` (bounded wait), then
    terminate the process tree (commands run in their own PTY sessions, outside the group),
    reap, re-raise.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from agent_session_manager.activities.providers._options import parse_options
from agent_session_manager.activities.providers.agent_cli import transcript
from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
)
from agent_session_manager.activities.providers.codex._errors import (
    classify_turn_error,
    rejected,
)
from agent_session_manager.activities.providers.codex._events import EventMapper
from agent_session_manager.activities.providers.codex._options import CodexOptions
from agent_session_manager.activities.providers.codex._session import (
    THREAD_BLOCK,
    codex_home_for,
    previous_thread_id,
)
from agent_session_manager.activities.providers.codex._transport import (
    DEFAULT_BASE_URL,
    INSTALL_HINT,
    AppServer,
    ProcessExited,
    RpcError,
    codex_binary,
    environment,
    render_config,
    write_atomic,
)
from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.contract import Message
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import EventType

#: How long a cancelled run waits for ``turn/interrupt`` before killing: the whole cancel
#: path (interrupt + TERM grace + KILL) must finish well inside the 2 s the issue allows.
INTERRUPT_GRACE_S = 0.5


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
        options = parse_options(CodexOptions, request.options, self.name)
        binary = codex_binary()
        api_key = request.secrets.get("OPENAI_API_KEY")
        if not api_key:
            raise error(
                "provider_authentication_failed",
                "OPENAI_API_KEY is not set in the worker's environment",
                retryable=False,
            )
        base_url = request.secrets.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

        home = codex_home_for(options, request.session_id)
        (home / "home").mkdir(parents=True, exist_ok=True)
        config = render_config(base_url, stream_idle_timeout_ms=options.stream_idle_timeout_ms())
        write_atomic(home / "config.toml", config)

        mapper = EventMapper(
            sink, options.approval_decision, request.approvals, options.approval_timeout_seconds
        )
        turn = _Turn(request, options, mapper)
        try:
            server = await AppServer.start(
                [str(binary), "app-server", "--listen", "stdio://"],
                env=environment(home, api_key),
                cwd=str(options.working_directory),
                on_server_request=turn.events.on_server_request,
            )
        except OSError as exc:  # not executable, wrong architecture, …
            raise error(
                "provider_unavailable",
                f"could not start the Codex CLI at {binary}: {exc}; reinstall with: {INSTALL_HINT}",
                details={"fix": INSTALL_HINT},
                retryable=False,
            ) from exc
        try:
            result = await turn.run(server)
        except asyncio.CancelledError:
            # Interrupt the turn (bounded), then the process tree goes whatever happened.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(turn.interrupt(server), INTERRUPT_GRACE_S)
            await server.kill()
            raise
        except BaseException:
            await server.kill()
            raise
        await server.close()
        return result


class _Turn:
    """One turn over a running app-server: the JSON-RPC steps and the final result."""

    def __init__(
        self, request: ProviderRequest, options: CodexOptions, events: EventMapper
    ) -> None:
        self.request = request
        self.options = options
        self.events = events

    async def run(self, server: AppServer) -> ProviderResult:
        """Drive the turn to its end; its result, or the taxonomy error it ended with."""
        events = self.events
        try:
            resumed, used_model = await self._start(server)
            turn = await self._pump(server)
        except RpcError as exc:
            raise rejected(exc, list(server.stderr_tail)[-10:]) from exc
        except (ProcessExited, TimeoutError) as exc:
            raise _exited(server, exc) from exc

        status = turn.get("status")
        if status == "failed" or (status != "completed" and events.turn_error):
            raise classify_turn_error(turn.get("error") or events.turn_error or {})
        if status == "interrupted":
            raise error("cancelled", "the Codex turn was interrupted", retryable=False)

        text = events.messages[-1] if events.messages else ""
        content: list[dict[str, Any]] = []
        if text:
            content.append({"type": "text", "text": text})
        content.append({"type": THREAD_BLOCK, "thread_id": events.thread_id})
        return ProviderResult(
            text=text,
            content=content,
            stop_reason=str(status),
            usage=events.usage.token_usage(),
            model=used_model,
            metadata={
                "codex_thread_id": events.thread_id,
                "codex_turn_id": events.turn_id,
                "model": used_model,
                "resumed": resumed,
                "reasoning_output_tokens": events.usage.reasoning,
                "cached_input_tokens": events.usage.cached,
                "agent_messages": len(events.messages),
            },
        )

    async def _start(self, server: AppServer) -> tuple[bool, str | None]:
        """Initialize, start or resume the thread, start the turn: (resumed, model)."""
        request = self.request
        options = self.options
        events = self.events
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
        model = options.model or request.model
        thread_params: dict[str, Any] = {
            "cwd": str(options.working_directory),
            "sandbox": options.sandbox,
            "approvalPolicy": options.approval_policy,
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
            except RpcError as exc:
                await events.sink.emit(
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
        events.thread_id = str(started["thread"]["id"])
        used_model: str | None = started.get("model") or model

        await events.sink.emit(
            EventType.MESSAGE_SENT,
            {
                "thread_id": events.thread_id,
                "model": used_model,
                "turn": request.turn,
                "resumed": resumed,
            },
        )
        turn_params: dict[str, Any] = {
            "threadId": events.thread_id,
            "input": _turn_input(request.messages, preamble),
        }
        if options.reasoning_effort:
            turn_params["effort"] = options.reasoning_effort
        if options.reasoning_summary:
            turn_params["summary"] = options.reasoning_summary
        turn = await server.request("turn/start", turn_params)
        events.turn_id = str(turn["turn"]["id"])
        return resumed, used_model

    async def _pump(self, server: AppServer) -> dict[str, Any]:
        """Map notifications to events until this turn completes; return the final turn."""
        while True:
            msg = await server.notifications.get()
            if msg is None:
                raise ProcessExited("turn")
            turn = await self.events.handle(msg)
            if turn is not None:
                return turn

    async def interrupt(self, server: AppServer) -> None:
        """Ask the CLI to stop the turn and wait for it to say so."""
        events = self.events
        if not (events.thread_id and events.turn_id):
            return
        await server.request(
            "turn/interrupt", {"threadId": events.thread_id, "turnId": events.turn_id}
        )


def _exited(server: AppServer, exc: Exception) -> AsmError:
    tail = list(server.stderr_tail)[-10:]
    what = "did not answer" if isinstance(exc, TimeoutError) else "exited"
    return error(
        "provider_error",
        f"the Codex CLI {what} before the turn completed" + (f": {tail[-1]}" if tail else ""),
        details={"stderr": tail, "returncode": server.proc.returncode},
    )


def _turn_input(messages: list[Message], preamble: str | None) -> list[dict[str, Any]]:
    texts = [preamble] if preamble else []
    texts += [m.text() for m in messages if m.role == "user" and m.text().strip()]
    if not texts:
        raise error("invalid_input", "a codex run needs a user message with text")
    return [{"type": "text", "text": t, "text_elements": []} for t in texts]
