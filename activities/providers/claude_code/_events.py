"""Claude Code's stream-json messages for one turn as normalized events, and the result.

``message_sent`` {session_id, model} once the CLI reports its session; partial messages →
``message_streamed`` (text deltas; thinking deltas with ``kind: "reasoning"``); each finished
text block → ``message_received``; ``tool_use`` blocks → ``tool_call_started`` and their
``tool_result`` → ``tool_call_completed`` (or ``tool_call_failed`` when ``is_error``) with the
tool's output; usage after every model response and, at the end, the CLI's totals with
``total_cost_usd`` and ``num_turns`` → ``token_usage_updated``. Never ``run_*``: the workflow
writes lifecycle events.
"""

from __future__ import annotations

import json
from typing import Any

from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
)
from agent_session_manager.activities.providers.claude_code._errors import classify_result
from agent_session_manager.activities.providers.claude_code._session import SESSION_BLOCK
from agent_session_manager.core.errors import error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage


def usage_of(raw: dict[str, Any] | None) -> TokenUsage:
    """Token usage from the API's usage object (as the CLI relays it)."""
    raw = raw or {}
    return TokenUsage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_creation_input_tokens=int(raw.get("cache_creation_input_tokens") or 0),
        cache_read_input_tokens=int(raw.get("cache_read_input_tokens") or 0),
    )


def result_text(content: Any) -> str:
    """A tool result's content as text."""
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


class EventMapper:
    """One turn's messages → events; also its session, usage, texts and open tool calls."""

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
            self.usage = self.usage + usage_of(self._message_usage)
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
            output = result_text(block.content)
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
        usage = usage_of(result.usage) if result.usage else self.usage
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
