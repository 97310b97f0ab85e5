"""The app-server's notifications for one turn as normalized events.

``message_sent`` {thread_id, model, turn, resumed} at the start (sent by the provider); agent
message deltas → ``message_streamed`` {text, item_id} and each finished agent message →
``message_received``; reasoning summary / text deltas → ``message_streamed`` {kind:
"reasoning"}; live command output → ``message_streamed`` {kind: "tool_output", tool_call_id};
command executions, file changes, MCP tool calls and web searches → ``tool_call_started`` /
``tool_call_completed`` (command, cwd, exit code, output, changed paths) or
``tool_call_failed`` when declined or failed without running; usage after each model response
→ ``token_usage_updated`` with the run's running totals (input, cached input, output,
reasoning). Approval requests (only with an ``approval_policy`` other than ``never``) go to
the run's approval gate (:mod:`activities.cli_approvals`): the session's tool policy for
``command_execution`` / ``file_change``, else ``approval_decision`` (``accept`` → always,
``decline`` → never, ``ask`` → a human's ``approve`` / ``deny``), recorded as
``tool_approval_requested`` (with its action digest) then ``…_granted`` / ``…_denied``.
The workflow writes the run lifecycle events; never ``run_*``.

Usage: ``TokenUsage.input_tokens`` is the *uncached* input (OpenAI's ``input_tokens`` minus
``cached_tokens``) and ``cache_read_input_tokens`` the cached part, so ``total_tokens`` counts
every token once, as it does for Anthropic. The event also carries OpenAI's raw
``input_tokens`` as ``provider_input_tokens`` and ``reasoning_output_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_session_manager.activities.providers.base import ApprovalGate, EventSink
from agent_session_manager.activities.providers.codex._transport import RpcError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.tools import ApprovalPolicy
from agent_session_manager.core.usage import TokenUsage


@dataclass
class Usage:
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


def tool_name(item: dict[str, Any]) -> str | None:
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


def tool_input(item: dict[str, Any]) -> dict[str, Any]:
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


def tool_completion(item: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
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


#: ``approval_decision`` as the default tool policy of the CLI's tools.
_POLICY: dict[str, ApprovalPolicy] = {"accept": "always", "decline": "never", "ask": "ask"}


class EventMapper:
    """One turn's notifications → events; also its ids, usage, texts and error."""

    def __init__(
        self,
        sink: EventSink,
        decision: str,
        gate: ApprovalGate | None = None,
        approval_timeout: float | None = None,
    ) -> None:
        self.sink = sink
        self.decision = decision
        self.gate = gate
        self.approval_timeout = approval_timeout
        self.thread_id: str | None = None
        self.turn_id: str | None = None
        self.usage = Usage()
        self.messages: list[str] = []
        self.turn_error: dict[str, Any] | None = None
        self._indexes: dict[str, int] = {}

    def _index(self, item_id: Any) -> int:
        # The sink coalesces consecutive deltas with the same index and kind: one per item.
        return self._indexes.setdefault(str(item_id), len(self._indexes))

    async def on_server_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Answer a server → client request: approvals by policy, questions declined."""
        if method in ("item/commandExecution/requestApproval", "item/fileChange/requestApproval"):
            kind = "command_execution" if "commandExecution" in method else "file_change"
            data = {
                "id": params.get("itemId"),
                "kind": kind,
                "command": params.get("command"),
                "reason": params.get("reason"),
            }
            if self.gate is not None:
                arguments = {k: params[k] for k in ("command", "cwd", "grantRoot") if params.get(k)}
                granted, _ = await self.gate.decide(
                    call_id=str(params.get("itemId") or f"{kind}-{len(self._indexes)}")[:255],
                    tool=kind,
                    arguments=arguments,
                    default=_POLICY[self.decision],
                    timeout_seconds=self.approval_timeout,
                    extra={
                        "kind": data["kind"],
                        "command": data["command"],
                        "reason": data["reason"],
                    },
                )
                return {"decision": "accept" if granted else "decline"}
            # No run around us (a provider called directly): nobody to ask.
            await self.sink.emit(EventType.TOOL_APPROVAL_REQUESTED, data)
            granted = self.decision == "accept"
            await self.sink.emit(
                EventType.TOOL_APPROVAL_GRANTED if granted else EventType.TOOL_APPROVAL_DENIED,
                {**data, "decided_by": "policy", "decision": self.decision},
            )
            return {"decision": "accept" if granted else "decline"}
        if method == "item/tool/requestUserInput":
            return {"answers": {}}
        if method == "mcpServer/elicitation/request":
            return {"action": "decline"}
        raise RpcError(method, {"code": -32601, "message": f"{method} is not supported"})

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Emit what one notification means; the final turn once this turn completes."""
        method = msg["method"]
        params = msg.get("params") or {}
        if params.get("turnId") not in (None, self.turn_id):
            return None  # another turn (a sub-agent's, say)
        if params.get("threadId") not in (None, self.thread_id):
            return None
        if method == "turn/completed":
            turn: dict[str, Any] = params.get("turn") or {}
            return turn if turn.get("id") == self.turn_id else None
        if method == "item/agentMessage/delta":
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
        return None

    async def _item_started(self, item: dict[str, Any]) -> None:
        name = tool_name(item)
        if name is not None:
            await self.sink.emit(
                EventType.TOOL_CALL_STARTED,
                {"id": item.get("id"), "name": name, "input": tool_input(item)},
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
        name = tool_name(item)
        if name is None:
            return
        failed, data = tool_completion(item)
        payload = {"id": item.get("id"), "name": name, "input": tool_input(item), **data}
        if failed:
            payload.setdefault("error", f"{name} {data.get('status') or 'failed'}")
            await self.sink.emit(EventType.TOOL_CALL_FAILED, payload)
        else:
            await self.sink.emit(EventType.TOOL_CALL_COMPLETED, payload)
