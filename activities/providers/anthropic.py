"""The ``anthropic`` provider: the Messages API through the official SDK, streamed.

One call to :meth:`AnthropicProvider.stream` is one run attempt: one ``POST /v1/messages`` with
``stream: true`` through ``AsyncAnthropic`` (the SDK's own retries off — retries are Temporal's,
visible in history), its raw Server-Sent Events mapped to normalized events:

=======================  ==============================================================
SSE                      event emitted
=======================  ==============================================================
message_start            ``message_sent`` {message_id, model}: the API accepted the request
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

Every failure leaves as a taxonomy :class:`core.errors.AsmError` raised ``from`` the SDK's (or
the transport's) exception, carrying the provider's status code, request id, ``retry-after``
and message in ``provider_error``: see :func:`map_exception` and :data:`EXCEPTION_CODES`, which a
test checks against every exception class the SDK exports.

We consume the raw event stream (``messages.create(stream=True)``), not the SDK's
``messages.stream()`` helper: the helper re-parses tool input JSON on every fragment and raises
a bare ``ValueError`` on malformed JSON, where we must report ``tool_call_failed`` with the raw
text and still finish the message.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Final

import anthropic
import httpx2

from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
)
from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.errors import AsmError, ProviderErrorInfo, error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage

PROVIDER_NAME: Final = "anthropic"

#: Not ``claude-sonnet-4-5``: the installed SDK lists it as deprecated and warns on every call.
DEFAULT_MODEL: Final = "claude-sonnet-4-6"
DEFAULT_MAX_TOKENS: Final = 1024

#: Seconds without a byte from the API before a stream counts as stalled (``provider_timeout``).
#: Below the usual 30 s heartbeat timeout would be too eager for long thinking pauses; the
#: heartbeat timeout still catches a worker that stops altogether.
DEFAULT_READ_TIMEOUT: Final = 60.0
DEFAULT_CONNECT_TIMEOUT: Final = 10.0

#: ``request.options`` keys passed to ``messages.create`` as keyword arguments.
REQUEST_OPTIONS: Final = (
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "service_tier",
    "output_config",
    "cache_control",
    "container",
    "inference_geo",
    "speed",
)
#: Options the API takes that this SDK version no longer names: sent through ``extra_body``.
BODY_OPTIONS: Final = ("temperature", "top_p", "top_k")

#: Response headers worth keeping on a failure.
_KEPT_HEADERS: Final = ("request-id", "retry-after", "retry-after-ms", "x-should-retry")

#: Content blocks that are tool calls (``server_tool_use`` runs on Anthropic's side).
_TOOL_BLOCKS: Final = frozenset({"tool_use", "server_tool_use"})


class AnthropicProvider:
    """The Messages API via ``anthropic.AsyncAnthropic``; credentials from ``request.secrets``.

    Secrets (the worker fills them from its environment): ``ANTHROPIC_API_KEY`` or
    ``ANTHROPIC_AUTH_TOKEN``, and optionally ``ANTHROPIC_BASE_URL``. Options: ``max_tokens``
    (default 1024), :data:`REQUEST_OPTIONS`, :data:`BODY_OPTIONS`, and ``read_timeout`` /
    ``connect_timeout`` in seconds.
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
        params = build_params(request, self.default_model or DEFAULT_MODEL)
        # A client per call: it owns the connection pool, and closing it here (also on
        # cancellation) guarantees no socket outlives the attempt. The TLS handshake it costs
        # is negligible next to a model call.
        client = _client(request)
        try:
            stream = await client.messages.create(**params, stream=True)
            # Leaving this block closes the HTTP response at once — on success, on failure,
            # and when the activity cancels us (CancelledError arrives at an await in here).
            async with stream:
                collector = _Collector(sink, request_id=stream.response.headers.get("request-id"))
                async for event in stream:
                    await collector.handle(event)
                return await collector.finish()
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
            await client.close()


# --- the request ----------------------------------------------------------------------------


def build_params(request: ProviderRequest, default_model: str) -> dict[str, Any]:
    """Keyword arguments for ``messages.create`` (without ``stream``) for this attempt."""
    options = request.options
    params: dict[str, Any] = {
        "model": request.model or default_model,
        "max_tokens": options.get("max_tokens", DEFAULT_MAX_TOKENS),
        # Content is passed through as given: strings, or content blocks (text, image,
        # tool_use, tool_result, thinking with its signature) exactly as an earlier run stored
        # them, so a conversation with tool calls round-trips unchanged.
        "messages": [
            {"role": m.role, "content": m.content} for m in (*request.history, *request.messages)
        ],
    }
    if request.system_prompt:
        params["system"] = request.system_prompt
    for key in REQUEST_OPTIONS:
        if options.get(key) is not None:
            params[key] = options[key]
    extra_body = {key: options[key] for key in BODY_OPTIONS if options.get(key) is not None}
    if extra_body:
        params["extra_body"] = extra_body
    return params


def _client(request: ProviderRequest) -> anthropic.AsyncAnthropic:
    secrets = request.secrets
    api_key = secrets.get("ANTHROPIC_API_KEY") or None
    auth_token = None if api_key else (secrets.get("ANTHROPIC_AUTH_TOKEN") or None)
    if api_key is None and auth_token is None:
        # Checked here: given no credential, the SDK would go looking in the worker's
        # environment and config files, which is not where a worker's secrets come from.
        raise error(
            "provider_authentication_failed",
            "no Anthropic credential: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) "
            "in the worker's environment",
            details={"provider": PROVIDER_NAME, "fix": "export ANTHROPIC_API_KEY=..."},
            retryable=False,
        )
    read = _seconds(request.options, "read_timeout", DEFAULT_READ_TIMEOUT)
    connect = _seconds(request.options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        auth_token=auth_token,
        # Explicit even when unset: None would make the SDK read the environment itself.
        base_url=secrets.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
        # Retries are Temporal's (visible in history, driven by the taxonomy), never the SDK's.
        max_retries=0,
        # ``read`` bounds the silence between two bytes of the stream: a stalled stream raises
        # the transport's ReadTimeout, which maps to ``provider_timeout``.
        timeout=httpx2.Timeout(read, connect=connect, read=read, write=read, pool=connect),
    )


def _seconds(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise error(
            "invalid_input",
            f"option {key} must be a positive number of seconds, got {value!r}",
            details={"provider": PROVIDER_NAME, "option": key},
        )
    return seconds


# --- the stream ---------------------------------------------------------------------------------


@dataclass
class _Collector:
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


# --- errors -------------------------------------------------------------------------------------

#: Taxonomy code per SDK exception class. Lookup walks the exception's MRO, so the many
#: ``error_code`` subclasses the SDK does not export inherit their parent's entry; a test
#: checks that every exception class ``anthropic`` exports has its own entry.
#: ``APIStatusError`` itself (a status with no class of its own, or an ``event: error`` inside a
#: 200 stream) is classified by the body's ``error.type``, then by status: :func:`_status_code`.
EXCEPTION_CODES: Final[dict[type[BaseException], str]] = {
    # transport
    anthropic.APITimeoutError: "provider_timeout",
    anthropic.APIConnectionError: "provider_timeout",
    # 4xx
    anthropic.BadRequestError: "invalid_input",
    anthropic.AuthenticationError: "provider_authentication_failed",
    anthropic.PaymentRequiredError: "provider_quota_exceeded",
    anthropic.PermissionDeniedError: "provider_authentication_failed",
    anthropic.NotFoundError: "invalid_input",
    anthropic.RequestTimeoutError: "provider_timeout",
    # 409 is a transient lock conflict on the API side; the SDK's default policy retries it.
    anthropic.ConflictError: "provider_unavailable",
    anthropic.PreconditionFailedError: "invalid_input",
    anthropic.ContentTooLargeError: "invalid_input",
    anthropic.UnprocessableEntityError: "invalid_input",
    anthropic.RateLimitError: "provider_rate_limited",
    anthropic.RequestHeaderFieldsTooLargeError: "invalid_input",
    anthropic.ClientClosedRequestError: "provider_timeout",
    # 5xx
    anthropic.InternalServerError: "provider_unavailable",
    anthropic.HTTPNotImplementedError: "provider_error",
    anthropic.ServiceUnavailableError: "provider_unavailable",
    anthropic.GatewayTimeoutError: "provider_timeout",
    anthropic.OverloadedError: "provider_unavailable",
    # error_code subclasses the SDK exports: spend and billing limits do not lift by retrying
    anthropic.ContractSpendLimitReachedError: "provider_quota_exceeded",
    anthropic.EnforcedSpendLimitReachedError: "provider_quota_exceeded",
    anthropic.RampLimitExceededError: "provider_rate_limited",
    anthropic.LinkedOrganizationBillingUnavailableError: "provider_quota_exceeded",
    anthropic.LinkedOrganizationSpendLimitReachedError: "provider_quota_exceeded",
    anthropic.OrganizationOnHoldError: "provider_quota_exceeded",
    anthropic.CMEKKeyDisabledError: "provider_error",
    anthropic.CMEKKeyNetworkBlockedError: "provider_error",
    anthropic.CMEKKeyUnreachableError: "provider_unavailable",
    anthropic.CMEKContextUnavailableError: "provider_unavailable",
    anthropic.ClaudeCodeKeyCreatorNotMemberError: "provider_authentication_failed",
    anthropic.ClaudeCodeVersionTooOldError: "invalid_input",
    anthropic.OrganizationTypeNotSupportedError: "invalid_input",
    anthropic.ParentOrganizationRequiredError: "invalid_input",
    anthropic.RequestBodyEncodingInvalidError: "invalid_input",
    anthropic.RequestBodyEncodingUnsupportedError: "invalid_input",
    anthropic.RequestBodyTooLargeAfterDecodingError: "invalid_input",
    anthropic.SandboxEgressRestrictedError: "provider_authentication_failed",
    # the workspace has Human Review off: use another workspace; retrying cannot help
    anthropic.WorkspaceHumanReviewDisabledError: "invalid_input",
    # the rest of the SDK's tree
    anthropic.APIResponseValidationError: "provider_error",
    anthropic.APIWebhookValidationError: "provider_error",
    anthropic.CredentialsError: "provider_authentication_failed",
    anthropic.IdentityTokenFileError: "provider_authentication_failed",
    anthropic.WorkloadIdentityError: "provider_authentication_failed",
    # raised by SDK middleware to ask for a retry; with max_retries=0 it reaches us
    anthropic.RetryableError: "provider_unavailable",
    anthropic.APIError: "provider_error",
    anthropic.AnthropicError: "provider_error",
    # The transport's own exceptions escape the SDK while a stream is being read: a stalled
    # stream is httpx2.ReadTimeout, a connection cut mid-body httpx2.RemoteProtocolError.
    httpx2.TimeoutException: "provider_timeout",
    httpx2.TransportError: "provider_timeout",
    httpx2.DecodingError: "provider_error",
    httpx2.TooManyRedirects: "provider_error",
    httpx2.HTTPStatusError: "provider_error",
    httpx2.HTTPError: "provider_error",
}

#: Taxonomy code per the API's ``error.type`` (for ``event: error`` mid-stream).
ERROR_TYPE_CODES: Final[dict[str, str]] = {
    "invalid_request_error": "invalid_input",
    "authentication_error": "provider_authentication_failed",
    "permission_error": "provider_authentication_failed",
    "billing_error": "provider_quota_exceeded",
    "not_found_error": "invalid_input",
    "request_too_large": "invalid_input",
    "rate_limit_error": "provider_rate_limited",
    "timeout_error": "provider_timeout",
    "api_error": "provider_unavailable",
    "overloaded_error": "provider_unavailable",
    "conflict_error": "provider_unavailable",
}


def _status_code(exc: anthropic.APIStatusError) -> str:
    by_type = ERROR_TYPE_CODES.get(str(getattr(exc, "type", None) or ""))
    if by_type is not None:
        return by_type
    status = exc.status_code
    if status == 429:
        return "provider_rate_limited"
    if status in (401, 403):
        return "provider_authentication_failed"
    if status == 408:
        return "provider_timeout"
    if status >= 500:
        return "provider_unavailable"
    if status >= 400:
        return "invalid_input"
    return "provider_error"  # an ``event: error`` of a type we do not know


def code_for(exc: BaseException) -> str:
    """The taxonomy code for an SDK or transport exception."""
    for cls in type(exc).__mro__:
        if cls is anthropic.APIStatusError:
            assert isinstance(exc, anthropic.APIStatusError)
            return _status_code(exc)
        code = EXCEPTION_CODES.get(cls)
        if code is not None:
            return code
    return "provider_error"


def map_exception(exc: BaseException) -> AsmError:
    """The taxonomy error for ``exc`` (to be raised ``from exc``)."""
    code = code_for(exc)
    info = provider_error_info(exc)
    details: dict[str, Any] = {"provider": PROVIDER_NAME, "exception": type(exc).__name__}
    error_type = getattr(exc, "type", None)
    if isinstance(exc, anthropic.APIStatusError) and error_type:
        details["error_type"] = error_type
    message = info.message or type(exc).__name__
    return error(code, f"anthropic: {message}", details=details, provider_error=info)


def provider_error_info(exc: BaseException) -> ProviderErrorInfo:
    """Status, request id, ``retry-after`` (seconds), kept headers, body and message."""
    if isinstance(exc, anthropic.APIStatusError):
        headers = exc.response.headers
        kept = {k: headers[k] for k in _KEPT_HEADERS if k in headers}
        kept.update({k: v for k, v in headers.items() if k.startswith("anthropic-ratelimit-")})
        mid_stream = exc.status_code < 400
        request_id = exc.request_id or _body_field(exc.body, "request_id")
        return ProviderErrorInfo(
            # An ``event: error`` arrives on a 200 response: that 200 is not the error's status.
            status_code=None if mid_stream else exc.status_code,
            request_id=request_id,
            retry_after=parse_retry_after(headers),
            headers=kept,
            body=exc.body,
            message=exc.api_message or exc.message,
        )
    if isinstance(exc, anthropic.APIError):
        return ProviderErrorInfo(message=exc.message, body=exc.body)
    return ProviderErrorInfo(message=str(exc) or type(exc).__name__)


def _body_field(body: object, key: str) -> str | None:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``retry-after`` (seconds or an HTTP-date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(value) and value >= 0:
                return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
