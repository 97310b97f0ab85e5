"""The ``anthropic`` provider: the Messages API through the official SDK, streamed.

One call to :meth:`AnthropicProvider.stream` is one run attempt: one ``POST /v1/messages`` with
``stream: true`` through ``AsyncAnthropic`` (the SDK's own retries off — retries are Temporal's,
visible in history), its raw Server-Sent Events mapped to normalized events by
:mod:`._events`, its failures to the taxonomy by :mod:`._errors`.

We consume the raw event stream (``messages.create(stream=True)``), not the SDK's
``messages.stream()`` helper: the helper re-parses tool input JSON on every fragment and raises
a bare ``ValueError`` on malformed JSON, where we must report ``tool_call_failed`` with the raw
text and still finish the message.
"""

from __future__ import annotations

import json
from typing import Any, Final

import anthropic
import httpx2

from agent_session_manager.activities.providers._options import parse_options
from agent_session_manager.activities.providers.anthropic._errors import (
    PROVIDER_NAME,
    map_exception,
)
from agent_session_manager.activities.providers.anthropic._events import EventMapper
from agent_session_manager.activities.providers.anthropic._options import AnthropicOptions
from agent_session_manager.activities.providers.anthropic._transport import client
from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
)
from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.errors import ProviderErrorInfo, error

#: Not ``claude-sonnet-4-5``: the installed SDK lists it as deprecated and warns on every call.
DEFAULT_MODEL: Final = "claude-sonnet-4-6"


class AnthropicProvider:
    """The Messages API via ``anthropic.AsyncAnthropic``; credentials from ``request.secrets``.

    Secrets (the worker fills them from its environment): ``ANTHROPIC_API_KEY`` or
    ``ANTHROPIC_AUTH_TOKEN``, and optionally ``ANTHROPIC_BASE_URL``. Options:
    :class:`._options.AnthropicOptions`.
    """

    name = PROVIDER_NAME
    default_model: str | None = DEFAULT_MODEL

    def capabilities(self) -> list[Capability]:
        """Streaming, tools, images, system prompts, interruption and extended thinking."""
        return [
            Capability(name="streaming", type="sampling"),
            Capability(name="tool_use", type="tool"),
            Capability(name="vision", type="resource"),
            Capability(name="system_prompts", type="prompt"),
            Capability(name="interrupt", type="sampling"),
            Capability(name="thinking", type="sampling"),
        ]

    async def stream(self, request: ProviderRequest, sink: EventSink) -> ProviderResult:
        """Stream one message; raise :class:`AsmError` on failure, re-raise cancellation."""
        options = parse_options(AnthropicOptions, request.options, PROVIDER_NAME)
        params = build_params(request, options, self.default_model or DEFAULT_MODEL)
        # A client per call: it owns the connection pool, and closing it here (also on
        # cancellation) guarantees no socket outlives the attempt. The TLS handshake it costs
        # is negligible next to a model call.
        api = client(request.secrets, options)
        try:
            stream = await api.messages.create(**params, stream=True)
            # Leaving this block closes the HTTP response at once — on success, on failure,
            # and when the activity cancels us (CancelledError arrives at an await in here).
            async with stream:
                mapper = EventMapper(sink, request_id=stream.response.headers.get("request-id"))
                async for event in stream:
                    await mapper.handle(event)
                return await mapper.finish()
        except (anthropic.AnthropicError, httpx2.HTTPError) as exc:
            raise map_exception(exc) from exc
        except json.JSONDecodeError as exc:  # an SSE ``data:`` line that is not JSON
            raise error(
                "provider_error",
                f"the provider sent malformed stream data: {exc}",
                details={"provider": PROVIDER_NAME},
                provider_error=ProviderErrorInfo(message=str(exc)),
            ) from exc
        finally:
            await api.close()


def build_params(
    request: ProviderRequest, options: AnthropicOptions, default_model: str
) -> dict[str, Any]:
    """Keyword arguments for ``messages.create`` (without ``stream``) for this attempt."""
    params: dict[str, Any] = {
        "model": request.model or default_model,
        "max_tokens": options.max_tokens,
        # Content is passed through as given: strings, or content blocks (text, image,
        # tool_use, tool_result, thinking with its signature) exactly as an earlier run stored
        # them, so a conversation with tool calls round-trips unchanged.
        "messages": [
            {"role": m.role, "content": m.content} for m in (*request.history, *request.messages)
        ],
        **options.request_params(),
    }
    if request.tools:
        params["tools"] = request.tools
    if request.system_prompt:
        params["system"] = request.system_prompt
    extra_body = options.body_params()
    if extra_body:
        params["extra_body"] = extra_body
    return params
