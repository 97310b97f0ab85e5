"""The scripted ``mock`` provider: deterministic text, tool calls, errors and delays.

Without a script it answers like a small, polite agent that remembers the conversation, so a
demo shows continuity across runs. With a :class:`core.contract.MockScript` (from the session
spec, or the run request) it plays the steps in order, which lets tests produce every event a
real provider produces: streamed text, reasoning, tool calls that succeed or fail, taxonomy
errors on chosen attempts (with ``retry-after``), and silences long enough to trip a heartbeat
timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
)
from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.contract import (
    MockError,
    MockScript,
    MockSleep,
    MockText,
    MockThinking,
    MockToolCall,
    MockToolUse,
)
from agent_session_manager.core.errors import AsmError, ProviderErrorInfo
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage


def _default_script(request: ProviderRequest) -> MockScript:
    prompt = request.messages[-1].text() if request.messages else ""
    earlier = sum(1 for m in request.history if m.role == "user")
    if earlier:
        first = next(m.text() for m in request.history if m.role == "user")
        memory = f"This is turn {request.turn}; earlier you asked me: {first!r}. "
    else:
        memory = "This is our first turn. "
    text = f"You said: {prompt!r}. {memory}I am the mock provider, streaming this reply."
    words = len(text.split())
    history_words = sum(len(m.text().split()) for m in request.history)
    return MockScript(
        steps=[MockText(text=text, chunk_size=6, delay_ms=15)],
        usage=TokenUsage(
            input_tokens=history_words + len(prompt.split()) + 10,
            output_tokens=words,
        ),
    )


class MockProvider:
    """A scripted provider for demos and tests; no network, fully deterministic."""

    name = "mock"
    default_model: str | None = "mock-1"

    def capabilities(self) -> list[Capability]:
        """Streaming, tools and system prompts; nothing that touches the outside world."""
        return [
            Capability(name="streaming", type="sampling"),
            Capability(name="tool_use", type="tool"),
            Capability(name="system_prompts", type="prompt"),
            Capability(name="interrupt", type="sampling"),
        ]

    async def stream(self, request: ProviderRequest, sink: EventSink) -> ProviderResult:
        """Play the script (or the default reply), emitting events as a real provider would."""
        script = (request.mock or _default_script(request)).for_step(request.step)
        await sink.emit(
            EventType.MESSAGE_SENT,
            {"model": request.model or self.default_model, "turn": request.turn},
        )
        text_parts: list[str] = []
        content: list[dict[str, Any]] = []
        for index, step in enumerate(script.steps):
            if isinstance(step, MockText):
                full = step.full_text()
                for start in range(0, len(full), step.chunk_size):
                    if step.delay_ms:
                        await asyncio.sleep(step.delay_ms / 1000)
                    chunk = full[start : start + step.chunk_size]
                    await sink.emit(EventType.MESSAGE_STREAMED, {"text": chunk, "index": index})
                text_parts.append(full)
                content.append({"type": "text", "text": full})
            elif isinstance(step, MockThinking):
                for start in range(0, len(step.text), step.chunk_size):
                    chunk = step.text[start : start + step.chunk_size]
                    await sink.emit(
                        EventType.MESSAGE_STREAMED,
                        {"text": chunk, "index": index, "kind": "thinking"},
                    )
            elif isinstance(step, MockToolCall):
                call_id = f"toolu_{request.run_id}_{index}"
                await sink.emit(EventType.TOOL_CALL_STARTED, {"id": call_id, "name": step.name})
                if step.delay_ms:
                    await asyncio.sleep(step.delay_ms / 1000)
                if step.fail:
                    await sink.emit(
                        EventType.TOOL_CALL_FAILED,
                        {
                            "id": call_id,
                            "name": step.name,
                            "input": step.input,
                            "error": str(step.output or "scripted tool failure"),
                        },
                    )
                else:
                    await sink.emit(
                        EventType.TOOL_CALL_COMPLETED,
                        {
                            "id": call_id,
                            "name": step.name,
                            "input": step.input,
                            "output": step.output,
                        },
                    )
                content.append(
                    {"type": "tool_use", "id": call_id, "name": step.name, "input": step.input}
                )
            elif isinstance(step, MockToolUse):
                # Only asked for: the run's agent loop executes it (activities.tools).
                run_tag = hashlib.sha256(request.run_id.encode()).hexdigest()[:12]
                call_id = f"toolu_{run_tag}_{request.step}_{index}"
                content.append(
                    {"type": "tool_use", "id": call_id, "name": step.name, "input": step.input}
                )
            elif isinstance(step, MockError):
                if not step.attempts or request.attempt in step.attempts:
                    # AsmError, not error(): the script holds a plain string, and AsmError
                    # rejects an unknown code.
                    raise AsmError(
                        step.code,
                        step.message,
                        provider_error=ProviderErrorInfo(
                            status_code=None,
                            retry_after=step.retry_after,
                            message=step.message,
                        ),
                    )
            elif isinstance(step, MockSleep):
                if not step.attempts or request.attempt in step.attempts:
                    await asyncio.sleep(step.ms / 1000)
        usage = script.usage or TokenUsage(
            input_tokens=sum(len(m.text().split()) for m in (*request.history, *request.messages)),
            output_tokens=len(" ".join(text_parts).split()),
        )
        text = "".join(text_parts)
        await sink.emit(EventType.TOKEN_USAGE_UPDATED, usage.model_dump())
        await sink.emit(
            EventType.MESSAGE_RECEIVED,
            {"text": text, "content": content, "stop_reason": script.stop_reason},
        )
        return ProviderResult(
            text=text,
            content=content,
            stop_reason=script.stop_reason,
            usage=usage,
            model=request.model or self.default_model,
        )
