"""One run is one connected trace: client span → update → child workflow → activity →
provider span (GenAI attributes) → event-store write spans; a retry adds a second provider
span and the first one carries the error."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import MockError, MockScript, MockText, RetrySettings
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from tests.observability.conftest import Otel, ancestry

CLIENT_ROOT = "StartWorkflowUpdate:submit_run"
#: From the provider span up to the client call that submitted the run.
PROVIDER_ANCESTRY = [
    "chat mock-1",
    "RunActivity:stream_provider",
    "StartActivity:stream_provider",
    "RunWorkflow:AgentRun",
    "StartChildWorkflow:AgentRun",
    "HandleUpdate:submit_run",
    CLIENT_ROOT,
]

SCRIPT = MockScript(
    steps=[MockText(text="Tracing makes runs visible.", chunk_size=5)],
    usage=TokenUsage(
        input_tokens=11, output_tokens=5, cache_read_input_tokens=3, cache_creation_input_tokens=2
    ),
    stop_reason="end_turn",
)


def provider_spans(spans: list[ReadableSpan], run_id: str) -> list[ReadableSpan]:
    found = [
        s for s in spans if s.name.startswith("chat") and s.attributes.get("asm.run_id") == run_id
    ]
    return sorted(found, key=lambda s: s.attributes["asm.attempt"])


def trace_of(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context.trace_id == trace_id]


def run_is_traced(run_id: str, attempts: int) -> Callable[[list[ReadableSpan]], bool]:
    def ready(spans: list[ReadableSpan]) -> bool:
        workflow_id = f"run-{run_id}"
        ended = {s.name for s in spans if s.attributes.get("temporalWorkflowID") == workflow_id}
        return len(provider_spans(spans, run_id)) >= attempts and "RunWorkflow:AgentRun" in ended

    return ready


def assert_connected(spans: list[ReadableSpan]) -> ReadableSpan:
    """Every span's parent is in the trace and there is exactly one root: return it."""
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1, [s.name for s in roots]
    for span in spans:
        ancestry(span, spans)  # raises on a missing parent
    return roots[0]


async def test_run_is_one_connected_trace_with_genai_attributes(
    otel: Otel, traced: SessionClient
) -> None:
    view = await traced.start_session(agent_id="tracer", provider="mock", mock=SCRIPT)
    ref = await traced.submit_run(view.session_id, "Show me the trace")
    result = await traced.wait_run(ref.run_id, view.session_id)
    assert result.status is RunStatus.COMPLETED

    spans = await otel.wait_for(run_is_traced(ref.run_id, attempts=1))
    (provider,) = provider_spans(spans, ref.run_id)
    run_trace = trace_of(spans, provider.context.trace_id)

    root = assert_connected(run_trace)
    assert root.name == CLIENT_ROOT and root.kind is SpanKind.CLIENT
    assert root.attributes["temporalWorkflowID"] == f"session-{view.session_id}"
    assert ancestry(provider, run_trace) == PROVIDER_ANCESTRY
    # The session's start is its own trace: a run's trace begins at its submit_run call.
    assert not any(s.name == "StartWorkflow:AgentSession" for s in run_trace)

    attrs = provider.attributes
    assert provider.kind is SpanKind.CLIENT
    assert provider.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.system"] == "mock"
    assert attrs["gen_ai.request.model"] == "mock-1"
    assert attrs["gen_ai.response.model"] == "mock-1"
    assert attrs["gen_ai.usage.input_tokens"] == 11 + 3 + 2  # cache reads/writes included
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 3
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 2
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("end_turn",)
    assert attrs["asm.session_id"] == view.session_id and attrs["asm.run_id"] == ref.run_id
    assert attrs["asm.attempt"] == 1

    # The event store's writes during the call, and the run_finished signal that tells the
    # session, are the provider span's children ...
    children = [s for s in run_trace if s.parent and s.parent.span_id == provider.context.span_id]
    assert {s.name for s in children} >= {
        "asm.store.record",
        "asm.store.save_reply",
        "SignalWorkflow:run_finished",
    }
    writes = [s for s in children if s.name.startswith("asm.store.")]
    assert len(writes) == len(children) - 1  # everything else is a store write
    for write in writes:
        assert write.attributes["db.system.name"] == "sqlite"
        assert write.attributes["asm.run_id"] == ref.run_id
    # ... including the run's lifecycle records, which the attempt writes on the hot path:
    # run_started on its own, run_completed with the assistant message and the ledger row.
    records = [s for s in writes if s.name == "asm.store.record"]
    assert [s.attributes["asm.event.type"] for s in records] == ["run_started"]
    (saved,) = [s for s in writes if s.name == "asm.store.save_reply"]
    assert saved.attributes["asm.event.type"] == "run_completed"


async def test_retried_run_has_two_provider_spans_the_first_failed(
    otel: Otel, traced: SessionClient
) -> None:
    view = await traced.start_session(agent_id="tracer", provider="mock")
    script = MockScript(
        steps=[
            MockError(code="provider_unavailable", message="overloaded", attempts=[1]),
            MockText(text="second time lucky", chunk_size=4),
        ],
        usage=TokenUsage(input_tokens=4, output_tokens=3),
    )
    ref = await traced.submit_run(
        view.session_id,
        "Try again",
        mock=script,
        retry=RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=0.2),
    )
    result = await traced.wait_run(ref.run_id, view.session_id)
    assert result.status is RunStatus.COMPLETED and result.attempts == 2

    spans = await otel.wait_for(run_is_traced(ref.run_id, attempts=2))
    first, second = provider_spans(spans, ref.run_id)
    assert first.context.trace_id == second.context.trace_id, "a retry stays in the run's trace"
    run_trace = trace_of(spans, first.context.trace_id)
    assert assert_connected(run_trace).name == CLIENT_ROOT
    assert ancestry(first, run_trace) == PROVIDER_ANCESTRY
    assert ancestry(second, run_trace) == PROVIDER_ANCESTRY

    assert first.attributes["asm.attempt"] == 1
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description.startswith("provider_unavailable")
    assert first.attributes["error.type"] == "provider_unavailable"
    assert any(e.name == "exception" for e in first.events)
    assert "gen_ai.usage.output_tokens" not in first.attributes

    assert second.attributes["asm.attempt"] == 2
    assert second.status.status_code is StatusCode.UNSET
    assert "error.type" not in second.attributes
    assert second.attributes["gen_ai.usage.output_tokens"] == 3
    # The failed attempt recorded run_started, then its error_occurred, then told its run
    # (attempt_failed keeps each attempt's error on the run's page), under the failed span.
    failed_writes = [s for s in run_trace if s.parent and s.parent.span_id == first.context.span_id]
    assert [s.name for s in failed_writes] == [
        "asm.store.record",
        "asm.store.append",
        "SignalWorkflow:attempt_failed",
    ]
