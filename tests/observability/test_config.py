"""Exporters follow the OpenTelemetry environment variables; nothing is installed without them."""

from __future__ import annotations

import pytest

from agent_session_manager.observability import config


def test_without_exporters_nothing_is_installed() -> None:
    built = config.build({"OTEL_TRACES_EXPORTER": "none"})
    assert built.tracer_provider is None and built.meter_provider is None
    assert config.build({}).traces == []
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
    assert config.build(disabled).traces == []


def test_exporters_follow_otel_environment_variables() -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    built = config.build(
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
    otlp = config.build({"OTEL_METRICS_EXPORTER": "otlp"})
    try:
        assert [type(e) for e in otlp.metric_exporters] == [OTLPMetricExporter]
    finally:
        otlp.shutdown()


def test_unknown_exporter_or_missing_otlp_package_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_session_manager.core.errors import AsmError

    with pytest.raises(AsmError) as info:
        config.build({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert "otlp, console, none" in info.value.message
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(AsmError) as info:
        config.build({"OTEL_TRACES_EXPORTER": "otlp"})
    assert config.OTLP_PACKAGE in info.value.message


@pytest.mark.parametrize(
    ("environ", "length"),
    [({}, 8192), ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100"}, 100)],
)
def test_span_attribute_values_are_capped(environ: dict[str, str], length: int) -> None:
    # A backstop behind observability.span_errors: no attribute carries a megabyte page.
    built = config.build({"OTEL_TRACES_EXPORTER": "console", **environ})
    try:
        assert built.tracer_provider is not None
        span = built.tracer_provider.get_tracer("t").start_span("s")
        span.set_attribute("big", "x" * 100_000)
        assert len(span.attributes["big"]) == length  # type: ignore[attr-defined]
        span.end()
    finally:
        built.shutdown()


def test_a_bad_attribute_length_limit_is_a_clear_error() -> None:
    from agent_session_manager.core.errors import AsmError

    with pytest.raises(AsmError) as info:
        config.build({"OTEL_TRACES_EXPORTER": "console", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "x"})
    assert info.value.code == "validation_error"
