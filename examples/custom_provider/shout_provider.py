"""``shout``: an example provider adapter that answers with the prompt in capitals.

It keeps the rules of docs/providers.md: it streams through the sink (never writes the store
itself), awaits between pieces (so a cancel reaches it as ``CancelledError``), never retries
inside, and raises a taxonomy error for input it cannot serve.
"""

from __future__ import annotations

import asyncio

from agent_session_manager import Capability, EventType, TokenUsage
from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
)
from agent_session_manager.core.errors import error


class ShoutProvider:
    """Answers with the user's last message in capitals, one word at a time."""

    name = "shout"
    default_model: str | None = "shout-1"

    def capabilities(self) -> list[Capability]:
        return [Capability(name="streaming", type="sampling")]

    async def stream(self, request: ProviderRequest, sink: EventSink) -> ProviderResult:
        prompt = request.messages[-1].text() if request.messages else ""
        if not prompt.strip():
            raise error("invalid_input", "shout needs something to shout: send a prompt")
        model = request.model or self.default_model
        await sink.emit(EventType.MESSAGE_SENT, {"model": model})
        words = prompt.upper().split()
        for word in words:
            await asyncio.sleep(0.01)  # where a real adapter awaits its SDK's stream
            await sink.emit(EventType.MESSAGE_STREAMED, {"text": word + " ", "index": 0})
        answer = " ".join(words)
        usage = TokenUsage(input_tokens=len(words), output_tokens=len(words))
        await sink.emit(EventType.TOKEN_USAGE_UPDATED, usage.model_dump())
        await sink.emit(EventType.MESSAGE_RECEIVED, {"text": answer})
        return ProviderResult(text=answer, stop_reason="end_turn", usage=usage, model=model)
