"""The provider span: one GenAI client span and the provider metrics per model call."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agent_session_manager.core.events import EventDraft, EventType
from agent_session_manager.observability.log_context import log_context
from agent_session_manager.observability.metrics import instruments
from agent_session_manager.observability.span_errors import bounded, record_error
from agent_session_manager.observability.tracing import tracer

T = TypeVar("T")


@dataclass
class _Call:
    """One provider attempt in flight (shared with the store wrapper through a contextvar)."""

    span: trace.Span
    provider: str
    model: str | None
    started: float
    first_token: bool = False
    response_model: str | None = None
    finish_reason: str | None = None


_current_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "asm_provider_call", default=None
)


def _will_retry(exc: ApplicationError) -> bool:
    if exc.non_retryable:
        return False
    try:
        info = activity.info()
    except RuntimeError:
        return False
    policy = info.retry_policy
    if policy is None:
        return True
    if exc.type and exc.type in (policy.non_retryable_error_types or ()):
        return False
    return not policy.maximum_attempts or info.attempt < policy.maximum_attempts


def traced_provider_call(
    fn: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T]]:
    """Decorate the provider activity: one GenAI client span and the provider metrics per call.

    The span (``chat <model>``, kind CLIENT) carries the GenAI semantic-convention attributes
    ``gen_ai.operation.name``, ``gen_ai.system`` (and its newer name ``gen_ai.provider.name``),
    ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` (cache
    reads and writes included, as the convention asks), ``gen_ai.usage.output_tokens`` and
    ``gen_ai.response.finish_reasons``, plus ``asm.session_id``, ``asm.run_id``,
    ``asm.attempt``. A failed attempt ends with status ERROR and ``error.type`` = the taxonomy
    code; if Temporal will retry it, ``asm.provider.retries`` counts it. Event-store writes
    made during the call are its child spans.

    Used under ``@activity.defn`` on a method ``(self, call: ProviderCall)``; the wrapper keeps
    the signature, so the activity definition is unchanged.
    """

    @functools.wraps(fn)
    async def wrapper(self: Any, call: Any, *args: Any, **kwargs: Any) -> T:
        spec = call.spec
        provider_impl = getattr(self, "providers", {}).get(spec.provider)
        model = spec.model or getattr(provider_impl, "default_model", None)
        try:
            attempt = activity.info().attempt
        except RuntimeError:
            attempt = 1
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": spec.provider,
            "gen_ai.provider.name": spec.provider,
            "asm.session_id": spec.session_id,
            "asm.run_id": spec.run_id,
            "asm.turn": spec.turn,
            "asm.attempt": attempt,
        }
        if model:
            attributes["gen_ai.request.model"] = model
        with (
            tracer().start_as_current_span(
                f"chat {model}" if model else "chat",
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
            log_context(session_id=spec.session_id, run_id=spec.run_id),
        ):
            state = _Call(span=span, provider=spec.provider, model=model, started=time.monotonic())
            token = _current_call.set(state)
            try:
                outcome = await fn(self, call, *args, **kwargs)
            except ApplicationError as exc:
                code = exc.type or "internal_error"
                span.set_attribute("error.type", code)
                record_error(span, exc, f"{code}: {exc.message}")
                if _will_retry(exc):
                    instruments().retries.add(
                        1, {"asm.provider": spec.provider, "error.type": code}
                    )
                raise
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    span.set_attribute("asm.cancelled", True)
                else:
                    span.set_attribute("error.type", type(exc).__name__)
                    span.set_status(Status(StatusCode.ERROR, bounded(str(exc))))
                raise
            finally:
                _current_call.reset(token)
            _finish(span, state, outcome)
            return outcome

    return wrapper


def _finish(span: trace.Span, state: _Call, outcome: Any) -> None:
    usage = getattr(outcome, "usage", None)
    response_model = state.response_model or state.model
    if response_model:
        span.set_attribute("gen_ai.response.model", response_model)
    reason = state.finish_reason or getattr(outcome, "stop_reason", None)
    if reason:
        span.set_attribute("gen_ai.response.finish_reasons", [reason])
    if usage is None:
        return
    cache_read = usage.cache_read_input_tokens
    cache_creation = usage.cache_creation_input_tokens
    total_input = usage.input_tokens + cache_read + cache_creation
    span.set_attribute("gen_ai.usage.input_tokens", total_input)
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    if cache_read:
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", cache_read)
    if cache_creation:
        span.set_attribute("gen_ai.usage.cache_creation.input_tokens", cache_creation)
    base = {"asm.provider": state.provider, "gen_ai.request.model": state.model or ""}
    for kind, count in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", cache_read),
        ("cache_creation", cache_creation),
    ):
        if count:
            instruments().tokens.add(count, {**base, "asm.token.kind": kind})


def note_result(result: Any) -> None:
    """Tell the current provider span what the provider reported (response model, stop reason).

    Called by the provider activity with the ``ProviderResult``; no-op outside a traced call.
    """
    state = _current_call.get()
    if state is None:
        return
    state.response_model = getattr(result, "model", None) or state.response_model
    state.finish_reason = getattr(result, "stop_reason", None) or state.finish_reason


def first_token_seen(drafts: Sequence[EventDraft]) -> None:
    """Time to first token, if ``drafts`` (being stored now) hold the call's first delta."""
    state = _current_call.get()
    if state is None or state.first_token:
        return
    if any(getattr(d, "type", None) is EventType.MESSAGE_STREAMED for d in drafts):
        state.first_token = True
        elapsed = time.monotonic() - state.started
        state.span.set_attribute("asm.time_to_first_token_s", round(elapsed, 6))
        instruments().time_to_first_token.record(
            elapsed, {"asm.provider": state.provider, "gen_ai.request.model": state.model or ""}
        )
