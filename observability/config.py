"""Tracer and meter providers configured from the standard ``OTEL_*`` variables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace

from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.observability.span_errors import MAX_SPAN_ATTRIBUTE_BYTES

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "agent-session-manager"

#: Variables a deployment sets for telemetry (docker-compose.yml sets every one). Also read:
#: OTEL_SDK_DISABLED, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS and the per-signal
#: OTEL_EXPORTER_OTLP_{TRACES,METRICS}_* variants, as the OpenTelemetry exporters define them.
ENV_VARS = (
    "ASM_PROMETHEUS_BIND",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_METRIC_EXPORT_INTERVAL",
)

OTLP_PACKAGE = "opentelemetry-exporter-otlp-proto-http"
OTLP_GRPC_PACKAGE = "opentelemetry-exporter-otlp-proto-grpc"


@dataclass
class Telemetry:
    """What :func:`configure` installed; :meth:`shutdown` flushes it (call before exit)."""

    traces: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    tracer_provider: Any = None
    meter_provider: Any = None
    span_exporters: list[Any] = field(default_factory=list)
    metric_exporters: list[Any] = field(default_factory=list)

    @property
    def tracing(self) -> bool:
        return self.tracer_provider is not None

    def shutdown(self) -> None:
        """Flush and stop the exporters (the CLI leaves through ``os._exit``: flush first)."""
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception:  # exporting is best effort; never fail the exit
                    log.warning("telemetry shutdown failed", exc_info=True)


_installed: Telemetry | None = None


def _exporter_names(environ: Mapping[str, str], var: str) -> list[str]:
    raw = environ.get(var, "none").strip().lower() or "none"
    names = [n.strip() for n in raw.split(",") if n.strip() and n.strip() != "none"]
    for name in names:
        if name not in ("otlp", "console"):
            raise error(
                "validation_error",
                f"{var}={raw!r}: supported exporters are otlp, console, none",
                details={"variable": var, "value": raw},
            )
    return names


def _protocol(environ: Mapping[str, str], signal: str) -> str:
    return (
        environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def _span_limits(environ: Mapping[str, str]) -> Any:
    """Attribute values capped (a backstop behind :mod:`.span_errors`): the standard variables'
    length if set, else :data:`~observability.span_errors.MAX_SPAN_ATTRIBUTE_BYTES`."""
    from opentelemetry.sdk.trace import SpanLimits

    raw = environ.get("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT") or environ.get(
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"
    )
    try:
        length = int(raw) if raw else MAX_SPAN_ATTRIBUTE_BYTES
    except ValueError:
        raise error(
            "validation_error",
            f"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT={raw!r}: use a whole number of characters",
            details={"value": raw},
        ) from None
    return SpanLimits(max_attribute_length=length)


def _otlp_span_exporter(environ: Mapping[str, str]) -> Any:
    protocol = _protocol(environ, "TRACES")
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise _missing_exporter(protocol) from exc
    return OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*


def _otlp_metric_exporter(environ: Mapping[str, str]) -> Any:
    protocol = _protocol(environ, "METRICS")
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[import-not-found]
                OTLPMetricExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
    except ImportError as exc:
        raise _missing_exporter(protocol) from exc
    return OTLPMetricExporter()


def _missing_exporter(protocol: str) -> AsmError:
    package = OTLP_GRPC_PACKAGE if protocol == "grpc" else OTLP_PACKAGE
    return error(
        "validation_error",
        f"OTLP export ({protocol}) needs the {package} package: pip install {package} "
        "(or set OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER to console or none)",
        details={"package": package},
    )


def build(environ: Mapping[str, str] | None = None) -> Telemetry:
    """Tracer and meter providers as the ``OTEL_*`` variables ask, not installed globally.

    ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: comma-separated ``otlp``, ``console``
    or ``none`` (the default: no provider, instrumentation stays a no-op).
    ``OTEL_SDK_DISABLED=true`` turns both off. The resource comes from ``OTEL_SERVICE_NAME`` /
    ``OTEL_RESOURCE_ATTRIBUTES`` (service name defaults to ``agent-session-manager``). OTLP
    endpoint, headers and timeouts are the exporters' own ``OTEL_EXPORTER_OTLP_*`` variables;
    the protocol is ``http/protobuf`` unless ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``.
    """
    env = os.environ if environ is None else environ
    result = Telemetry()
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return result
    trace_names = _exporter_names(env, "OTEL_TRACES_EXPORTER")
    metric_names = _exporter_names(env, "OTEL_METRICS_EXPORTER")
    if not trace_names and not metric_names:
        return result

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES; the explicit service name wins.
    service = env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    resource = Resource.create({SERVICE_NAME: service})
    if trace_names:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from temporalio.contrib.opentelemetry import create_tracer_provider

        tracer_provider = create_tracer_provider(resource=resource, span_limits=_span_limits(env))
        for name in trace_names:
            exporter = _otlp_span_exporter(env) if name == "otlp" else ConsoleSpanExporter()
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
            result.span_exporters.append(exporter)
        result.tracer_provider = tracer_provider
        result.traces = trace_names
    if metric_names:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )

        interval = env.get("OTEL_METRIC_EXPORT_INTERVAL")
        result.metric_exporters = [
            _otlp_metric_exporter(env) if name == "otlp" else ConsoleMetricExporter()
            for name in metric_names
        ]
        readers = [
            PeriodicExportingMetricReader(
                exporter, export_interval_millis=float(interval) if interval else None
            )
            for exporter in result.metric_exporters
        ]
        result.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        result.metrics = metric_names
    return result


def configure(environ: Mapping[str, str] | None = None) -> Telemetry:
    """:func:`build`, then install the providers as OpenTelemetry's globals (once per process).

    A second call returns what the first installed: OpenTelemetry's globals are set once.
    """
    global _installed
    if _installed is not None:
        return _installed
    result = build(environ)
    if result.tracer_provider is not None:
        trace.set_tracer_provider(result.tracer_provider)
    if result.meter_provider is not None:
        metrics.set_meter_provider(result.meter_provider)
    _installed = result
    if result.traces or result.metrics:
        log.info(
            "telemetry: traces=%s metrics=%s",
            ",".join(result.traces) or "none",
            ",".join(result.metrics) or "none",
        )
    return result


def shutdown() -> None:
    """Flush and stop what :func:`configure` installed (no-op if nothing was)."""
    if _installed is not None:
        _installed.shutdown()


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered now, keeping the providers running (no-op if none)."""
    if _installed is None:
        return
    for provider in (_installed.tracer_provider, _installed.meter_provider):
        if provider is not None:
            try:
                provider.force_flush(timeout_millis)
            except Exception:  # exporting is best effort
                log.warning("telemetry flush failed", exc_info=True)
