"""One run is one connected trace: client span → update → child workflow → activity →
provider span (GenAI attributes) → event-store write spans; a retry adds a second provider
span and the first one carries the error."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import MockError, MockScript, MockText, RetrySettings
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.worker import telemetry
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
        "asm.store.save_messages",
        "SignalWorkflow:run_finished",
    }
    writes = [s for s in children if s.name.startswith("asm.store.")]
    assert len(writes) == len(children) - 1  # everything else is a store write
    for write in writes:
        assert write.attributes["db.system.name"] == "sqlite"
        assert write.attributes["asm.run_id"] == ref.run_id
    # ... including the run's lifecycle records, which the attempt writes on the hot path:
    # run_started on its own, run_completed with the assistant message.
    records = [s for s in writes if s.name == "asm.store.record"]
    assert [s.attributes["asm.event.type"] for s in records] == ["run_started"]
    (saved,) = [s for s in writes if s.name == "asm.store.save_messages"]
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
    # The failed attempt recorded run_started, then its error_occurred, under the failed span.
    failed_writes = [s for s in run_trace if s.parent and s.parent.span_id == first.context.span_id]
    assert [s.name for s in failed_writes] == ["asm.store.record", "asm.store.append"]


def test_without_exporters_nothing_is_installed() -> None:
    built = telemetry.build({"OTEL_TRACES_EXPORTER": "none"})
    assert built.tracer_provider is None and built.meter_provider is None
    assert telemetry.build({}).traces == []
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
    assert telemetry.build(disabled).traces == []


def test_exporters_follow_otel_environment_variables() -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    built = telemetry.build(
        {
            "OTEL_TRACES_EXPORTER": "otlp,console",
            "OTEL_METRICS_EXPORTER": "console",
            "OTEL_SERVICE_NAME": "asm-test",
            "OTEL_METRIC_EXPORT_INTERVAL": "60000",
        }
    )
    try:
        assert isinstance(built.tracer_provider, ReplaySafeTracerProvider)
        exporters = [type(e) for e in built.span_exporters]
        assert exporters == [OTLPSpanExporter, ConsoleSpanExporter]
        assert [type(e) for e in built.metric_exporters] == [ConsoleMetricExporter]
        span = built.tracer_provider.get_tracer("t").start_span("s")
        assert span.resource.attributes["service.name"] == "asm-test"
        span.end()
        assert built.traces == ["otlp", "console"] and built.metrics == ["console"]
    finally:
        built.shutdown()
    otlp = telemetry.build({"OTEL_METRICS_EXPORTER": "otlp"})
    try:
        assert [type(e) for e in otlp.metric_exporters] == [OTLPMetricExporter]
    finally:
        otlp.shutdown()


def test_unknown_exporter_or_missing_otlp_package_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_session_manager.core.errors import AsmError

    with pytest.raises(AsmError) as info:
        telemetry.build({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert "otlp, console, none" in info.value.message
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(AsmError) as info:
        telemetry.build({"OTEL_TRACES_EXPORTER": "otlp"})
    assert telemetry.OTLP_PACKAGE in info.value.message


def test_prometheus_runtime_only_when_asked() -> None:
    assert telemetry.temporal_runtime({}) is None
    from agent_session_manager.worker.dev_server import free_port

    bind = f"127.0.0.1:{free_port()}"
    runtime = telemetry.temporal_runtime({"ASM_PROMETHEUS_BIND": bind})
    assert runtime is not None
    assert telemetry.temporal_runtime({"ASM_PROMETHEUS_BIND": bind}) is runtime  # one per bind
    import urllib.request

    with urllib.request.urlopen(f"http://{bind}/metrics", timeout=5) as response:
        assert response.status == 200  # the SDK's Prometheus endpoint is serving


def test_plugins_only_when_tracing_is_enabled(otel: Otel) -> None:
    from temporalio.contrib.opentelemetry import OpenTelemetryPlugin

    # The session's in-memory provider is replay-safe, so tracing counts as enabled here.
    assert telemetry.tracing_enabled()
    (plugin,) = telemetry.temporal_plugins()
    assert isinstance(plugin, OpenTelemetryPlugin)


def test_detach_noise_of_closed_workflow_coroutines_is_dropped_and_nothing_else(
    caplog: pytest.LogCaptureFixture, otel: Otel
) -> None:
    """temporalio/sdk-python#441: an evicted workflow's coroutine is closed in another Context."""
    import contextvars

    from opentelemetry import context as otel_context

    assert telemetry.temporal_plugins()  # tracing is on: the plugin comes with the filter

    def traced() -> object:
        token = otel_context.attach(otel_context.set_value("asm", 1))
        try:
            yield
        finally:
            otel_context.detach(token)

    gen = traced()
    contextvars.copy_context().run(next, gen)  # attached in one Context ...
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        gen.close()  # ... detached in another, by GeneratorExit, as at eviction: dropped
        assert not [r for r in caplog.records if r.name == "opentelemetry.context"]
        token = contextvars.copy_context().run(otel_context.attach, otel_context.get_current())
        otel_context.detach(token)  # a real misuse (no GeneratorExit) is still reported
    assert [r.getMessage() for r in caplog.records if r.name == "opentelemetry.context"] == [
        "Failed to detach context"
    ]
