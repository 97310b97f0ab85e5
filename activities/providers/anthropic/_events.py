"""The Messages API's Server-Sent Events as normalized events, and the final message.

=======================  ==============================================================
SSE                      event emitted
=======================  ==============================================================
message_start            ``message_sent`` {message_id, model}: the API accepted the request,
                         then ``token_usage_updated`` with its usage (input and cache
                         counts are billed from here on, even if the stream breaks)
text_delta               ``message_streamed`` {text, index}
thinking_delta           ``message_streamed`` {text, index, kind: "thinking"}
tool_use block start     ``tool_call_started`` {id, name}
tool_use block stop      ``tool_call_completed`` {id, name, input} — or ``tool_call_failed``
                         {id, name, raw, error} when the streamed JSON does not parse
message_delta            ``token_usage_updated`` {input, output, cache creation, cache read}
end of stream            ``message_received`` {text, content, stop_reason}
=======================  ==============================================================

Run lifecycle events (``run_started`` … ``run_cancelled``) and ``error_occurred`` are the
workflow's and the activity's to write, not the adapter's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from agent_session_manager.activities.providers.anthropic._errors import PROVIDER_NAME
from agent_session_manager.activities.providers.base import EventSink, ProviderResult
from agent_session_manager.core.errors import ProviderErrorInfo, error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage

#: Content blocks that are tool calls (``server_tool_use`` runs on Anthropic's side).
_TOOL_BLOCKS: Final = frozenset({"tool_use", "server_tool_use"})


@dataclass
class EventMapper:
    """Turns raw stream events into normalized events and the final message."""

    sink: EventSink
    request_id: str | None = None
    message_id: str | None = None
    model: str | None = None
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    tool_json: dict[int, list[str]] = field(default_factory=dict)
    malformed_tool_calls: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    )
    stopped: bool = False

    def _update_usage(self, usage: Any) -> None:
        # Counts are cumulative totals: each one present overwrites; absent ones keep the
        # message_start value.
        for key in self.usage:
            value = getattr(usage, key, None)
            if isinstance(value, int):
                self.usage[key] = value

    async def handle(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = event.message
            self.message_id = message.id
            self.model = message.model
            self._update_usage(message.usage)
            await self.sink.emit(
                EventType.MESSAGE_SENT, {"message_id": self.message_id, "model": self.model}
            )
            await self.sink.emit(EventType.TOKEN_USAGE_UPDATED, self.token_usage().model_dump())
        elif kind == "content_block_start":
            block = _as_dict(event.content_block)
            self.blocks[event.index] = block
            if block.get("type") in _TOOL_BLOCKS:
                self.tool_json[event.index] = []
                await self.sink.emit(EventType.TOOL_CALL_STARTED, _tool_ref(block))
        elif kind == "content_block_delta":
            await self._delta(event.index, event.delta)
        elif kind == "content_block_stop":
            await self._block_stop(event.index)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self.stop_sequence = event.delta.stop_sequence
            self._update_usage(event.usage)
            await self.sink.emit(EventType.TOKEN_USAGE_UPDATED, self.token_usage().model_dump())
        elif kind == "message_stop":
            self.stopped = True
        # Anything else is an event type newer than this adapter: ignoring it is what the
        # API's versioning policy asks of clients.

    async def _delta(self, index: int, delta: Any) -> None:
        block = self.blocks.setdefault(index, {"type": "text", "text": ""})
        kind = getattr(delta, "type", None)
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.text
            await self.sink.emit(EventType.MESSAGE_STREAMED, {"text": delta.text, "index": index})
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.thinking
            await self.sink.emit(
                EventType.MESSAGE_STREAMED,
                {"text": delta.thinking, "index": index, "kind": "thinking"},
            )
        elif kind == "signature_delta":
            block["signature"] = delta.signature
        elif kind == "input_json_delta":
            self.tool_json.setdefault(index, []).append(delta.partial_json)
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(_as_dict(delta.citation))

    async def _block_stop(self, index: int) -> None:
        block = self.blocks.get(index)
        if block is None or block.get("type") not in _TOOL_BLOCKS:
            return
        raw = "".join(self.tool_json.pop(index, []))
        if not raw.strip():
            block["input"] = block.get("input") or {}
        else:
            try:
                parsed = json.loads(raw)
                if not isinstance(parsed, dict):
                    raise ValueError(
                        f"tool input must be a JSON object, got {type(parsed).__name__}"
                    )
            except ValueError as exc:
                # Stored with an empty input so the message stays valid for the next request;
                # the raw text is in the event for whoever has to look.
                block["input"] = {}
                self.malformed_tool_calls.append(str(block.get("id")))
                await self.sink.emit(
                    EventType.TOOL_CALL_FAILED, {**_tool_ref(block), "raw": raw, "error": str(exc)}
                )
                return
            block["input"] = parsed
        await self.sink.emit(
            EventType.TOOL_CALL_COMPLETED, {**_tool_ref(block), "input": block["input"]}
        )

    def token_usage(self) -> TokenUsage:
        return TokenUsage(**self.usage)

    async def finish(self) -> ProviderResult:
        if self.message_id is None or not self.stopped:
            # The body ended cleanly but short of message_stop: a connection cut by something
            # in between. Retryable, like any other dropped connection.
            raise error(
                "provider_timeout",
                "the provider's stream ended before message_stop",
                details={"provider": PROVIDER_NAME, "message_id": self.message_id},
                provider_error=ProviderErrorInfo(request_id=self.request_id),
            )
        content = [
            {k: v for k, v in self.blocks[i].items() if v is not None} for i in sorted(self.blocks)
        ]
        text = "".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
        await self.sink.emit(
            EventType.MESSAGE_RECEIVED,
            {"text": text, "content": content, "stop_reason": self.stop_reason},
        )
        metadata: dict[str, Any] = {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "stop_sequence": self.stop_sequence,
        }
        if self.malformed_tool_calls:
            metadata["malformed_tool_calls"] = self.malformed_tool_calls
        return ProviderResult(
            text=text,
            content=content,
            stop_reason=self.stop_reason,
            usage=self.token_usage(),
            model=self.model,
            metadata={k: v for k, v in metadata.items() if v is not None},
        )


def _as_dict(model: Any) -> dict[str, Any]:
    # The SDK builds stream models without validation; warnings=False keeps pydantic from
    # warning about an unexpected field shape (an error under our warnings-as-errors tests).
    if hasattr(model, "to_dict"):
        return dict(model.to_dict(mode="json", warnings=False))
    return dict(model)


def _tool_ref(block: Mapping[str, Any]) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": block.get("id"), "name": block.get("name")}
    if block.get("type") == "server_tool_use":
        ref["server"] = True
    return ref
