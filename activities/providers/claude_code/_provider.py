"""The ``claude-code`` provider: one run = one turn of Claude Code, driven by ``claude-agent-sdk``.

Install: ``pip install 'agent-session-manager[claude-code]'`` (``claude-agent-sdk`` bundles the
Claude Code CLI; nothing is downloaded at run time).

One run: read the options (:mod:`._options`), find the session's ``HOME`` and whether its
previous Claude Code session can be resumed here (:mod:`._session`), start the CLI with our
own transport, flags and environment (:mod:`._transport`), send the prompt, map its messages
to events (:mod:`._events`) until the result, classify a failed result (:mod:`._errors`). A
missing extra or a bundled binary that cannot be started is ``provider_unavailable``
(non-retryable) naming the ``pip install`` command.

Cancellation: ``asyncio.CancelledError``: send ``interrupt`` (bounded), kill the process tree,
close the client, re-raise.
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
from agent_session_manager.activities.providers.claude_code._errors import sdk_failure
from agent_session_manager.activities.providers.claude_code._events import EventMapper
from agent_session_manager.activities.providers.claude_code._options import ClaudeCodeOptions
from agent_session_manager.activities.providers.claude_code._session import (
    claude_home_for,
    has_transcript,
    previous_session_id,
)
from agent_session_manager.activities.providers.claude_code._transport import (
    CliTransport,
    claude_binary,
    command_line,
    environment,
)
from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.errors import error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.tools import ApprovalPolicy

#: Budget for the ``interrupt`` control request on cancellation, and the SIGTERM grace after
#: it (in ``terminate_process_tree``): together well inside the 2 s a cancel may take.
INTERRUPT_GRACE_S = 0.5


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
        options = parse_options(ClaudeCodeOptions, request.options, self.name)
        binary = claude_binary()
        if not request.secrets.get("ANTHROPIC_API_KEY"):
            raise error(
                "provider_authentication_failed",
                "ANTHROPIC_API_KEY is not set in the worker's environment",
                retryable=False,
            )

        import claude_agent_sdk
        from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError

        home = claude_home_for(options, request.session_id)
        home.mkdir(parents=True, exist_ok=True)

        resume = previous_session_id(request.history)
        preamble: str | None = None
        if resume and not has_transcript(home, resume):
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
            raise error("invalid_input", "a claude-code run needs a user message with text")

        argv = command_line(
            binary,
            options,
            model=options.model or request.model,
            system_prompt=request.system_prompt,
            resume=resume,
        )
        env = environment(home, options, request.secrets, claude_agent_sdk.__version__)
        transport = CliTransport(argv, env=env, cwd=str(options.working_directory))
        sdk_options = ClaudeAgentOptions()
        if options.permission_decision:
            sdk_options = ClaudeAgentOptions(
                can_use_tool=_permission_callback(request, sink, options)
            )
        client = ClaudeSDKClient(sdk_options, transport=transport)
        events = EventMapper(request, sink, resumed=resume is not None)
        try:
            await client.connect()
            await client.query("\n\n".join(texts))
            async for message in client.receive_response():
                await events.handle(message)
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
            raise sdk_failure(exc, list(transport.stderr_tail)[-10:]) from exc
        except BaseException:
            await transport.kill()
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise
        await client.disconnect()
        return await events.finish()


#: ``permission_decision`` as the default policy of the CLI's tools.
_POLICY: dict[str, ApprovalPolicy] = {"allow": "always", "deny": "never", "ask": "ask"}


def _permission_callback(
    request: ProviderRequest, sink: EventSink, options: ClaudeCodeOptions
) -> Any:
    """The SDK's ``can_use_tool``: the run's approval gate decides each permission request."""
    from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

    assert options.permission_decision is not None
    default = _POLICY[options.permission_decision]
    asked = 0

    async def can_use_tool(tool: str, arguments: dict[str, Any], context: Any) -> Any:
        nonlocal asked
        asked += 1
        call_id = str(getattr(context, "tool_use_id", None) or f"permission-{asked}")[:255]
        gate = request.approvals
        if gate is None:  # a provider called directly: nobody to ask, the policy answers
            granted = default == "always"
            reason: str | None = f"policy {default}"
            await sink.emit(EventType.TOOL_APPROVAL_REQUESTED, {"id": call_id, "name": tool})
            await sink.emit(
                EventType.TOOL_APPROVAL_GRANTED if granted else EventType.TOOL_APPROVAL_DENIED,
                {"id": call_id, "name": tool, "decided_by": "policy", "reason": reason},
            )
        else:
            granted, reason = await gate.decide(
                call_id=call_id,
                tool=tool,
                arguments=arguments,
                default=default,
                timeout_seconds=options.approval_timeout_seconds,
                extra={"reason": getattr(context, "decision_reason", None)},
            )
        if granted:
            return PermissionResultAllow()
        return PermissionResultDeny(message=f"not approved: {reason or 'denied'}")

    return can_use_tool
