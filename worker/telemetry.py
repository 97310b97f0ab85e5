"""Tracing and metrics: OpenTelemetry configured from the standard ``OTEL_*`` variables.

Traces
    :func:`configure` installs a replay-safe tracer provider
    (``temporalio.contrib.opentelemetry.create_tracer_provider``) when ``OTEL_TRACES_EXPORTER``
    names an exporter (``otlp``, ``console``; default ``none``). Clients connected with
    :func:`temporal_plugins` (or wrapped by :func:`instrument_client`) then carry Temporal's
    ``OpenTelemetryPlugin``: a ``submit_run`` call starts a client span, the update handler,
    the ``AgentRun`` child workflow and its activities continue that trace through Temporal
    headers, and workers built from such a client inherit the plugin. Inside the provider
    activity, :func:`traced_provider_call` opens one GenAI span per model call (attempt) and
    :class:`InstrumentedStore` adds a child span per event-store write. So one run is one
    trace: ``StartWorkflowUpdate:submit_run → HandleUpdate:submit_run →
    StartChildWorkflow:AgentRun → RunWorkflow:AgentRun → StartActivity/RunActivity:
    stream_provider → chat <model> → asm.store.*``.

    Replay safety: workflow-side spans come only from the plugin, whose tracer skips ending
    spans while a workflow replays and draws span ids from the workflow's deterministic random
    (its own stream: enabling tracing does not change ``workflow.uuid4()`` values, so a history
    recorded with tracing replays without it and vice versa).

Metrics
    Recorded where the I/O happens, never in workflow code (which replays): lifecycle counters
    when ``record_lifecycle`` writes a *new* lifecycle event (the store returns ``None`` for an
    event id it already has, so a retried local activity does not count twice), token, retry
    and time-to-first-token instruments in the provider activity. ``OTEL_METRICS_EXPORTER``
    (``otlp``, ``console``; default ``none``) chooses the exporter. The Temporal SDK's own
    metrics are served for Prometheus when ``ASM_PROMETHEUS_BIND`` is set
    (:func:`temporal_runtime`).

Without exporters everything here is a no-op through OpenTelemetry's proxy providers.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import EventType

log = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "agent_session_manager"
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

# Histogram buckets in seconds (the SDK's defaults are for milliseconds up to 10 s).
RUN_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

T = TypeVar("T")


# --- configuration -------------------------------------------------------------------------


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

        tracer_provider = create_tracer_provider(resource=resource)
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


def tracing_enabled() -> bool:
    """True when the global tracer provider is replay-safe (what the Temporal plugin needs)."""
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    return isinstance(trace.get_tracer_provider(), ReplaySafeTracerProvider)


# --- Temporal: plugin, client, runtime -------------------------------------------------------


def temporal_plugins() -> list[Any]:
    """Plugins for ``Client.connect``: Temporal's OpenTelemetry plugin when tracing is on.

    Registered on the client, it applies to that client's calls *and* to every worker built
    from the client (registering it on both would duplicate spans).
    """
    if not tracing_enabled():
        return []
    from temporalio.contrib.opentelemetry import OpenTelemetryPlugin

    _quiet_eviction_detach()

    # add_temporal_spans: client, workflow and activity spans, not only context propagation.
    return [OpenTelemetryPlugin(add_temporal_spans=True)]


class EvictionDetachFilter(logging.Filter):
    """Drop OpenTelemetry's "Failed to detach context" when a workflow coroutine is closed.

    When a workflow leaves the worker's cache (eviction, worker shutdown), the SDK closes its
    coroutines; the tracing interceptor's ``finally`` then detaches its context from another
    ``contextvars.Context`` and OpenTelemetry logs the ``ValueError`` at ERROR
    (temporalio/sdk-python#441). Spans are unaffected. Only that case is dropped: the record's
    exception must have been raised while handling ``GeneratorExit``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != "Failed to detach context" or not record.exc_info:
            return True
        exc = record.exc_info[1]
        return not (isinstance(exc, ValueError) and isinstance(exc.__context__, GeneratorExit))


def _quiet_eviction_detach() -> None:
    logger = logging.getLogger("opentelemetry.context")
    if not any(isinstance(f, EvictionDetachFilter) for f in logger.filters):
        logger.addFilter(EvictionDetachFilter())


def _has_tracing(client: Client) -> bool:
    from temporalio.contrib.opentelemetry import OpenTelemetryPlugin

    return any(isinstance(p, OpenTelemetryPlugin) for p in client.config().get("plugins", []))


def instrument_client(client: Client, *, force: bool = False) -> Client:
    """``client`` with the tracing plugin added (same connection), or ``client`` as is.

    For clients made elsewhere (the embedded dev server's, a test's). Added only when tracing
    is enabled (or ``force``) and the client does not have it yet.
    """
    if _has_tracing(client) or not (force or tracing_enabled()):
        return client
    from temporalio.contrib.opentelemetry import OpenTelemetryPlugin

    config: dict[str, Any] = dict(client.config())
    plugins = [*config.pop("plugins", []), OpenTelemetryPlugin(add_temporal_spans=True)]
    service_client = config.pop("service_client")
    return Client(service_client, plugins=plugins, **config)


@functools.cache
def _prometheus_runtime(bind: str) -> Runtime:
    # One Runtime per process and address: a second one would fail to bind the port.
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


def temporal_runtime(environ: Mapping[str, str] | None = None) -> Runtime | None:
    """The SDK runtime for ``Client.connect(runtime=…)``: Prometheus on ``ASM_PROMETHEUS_BIND``.

    ``None`` (the SDK's default runtime) when the variable is unset. The endpoint serves the
    Temporal SDK's own metrics (task latencies, slots, polls, activity/workflow counters) in
    Prometheus text format at ``http://<bind>/metrics``.
    """
    env = os.environ if environ is None else environ
    bind = env.get("ASM_PROMETHEUS_BIND", "").strip()
    return _prometheus_runtime(bind) if bind else None


# --- metric instruments ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruments:
    """The application's metric instruments (names follow OpenTelemetry's dotted style)."""

    runs_started: metrics.Counter
    runs_completed: metrics.Counter
    run_duration: metrics.Histogram
    time_to_first_token: metrics.Histogram
    tokens: metrics.Counter
    retries: metrics.Counter
    active_sessions: metrics.UpDownCounter
    active_runs: metrics.UpDownCounter

    @classmethod
    def create(cls, meter: metrics.Meter) -> Instruments:
        return cls(
            runs_started=meter.create_counter(
                "asm.runs.started", unit="{run}", description="Runs that started, by provider"
            ),
            runs_completed=meter.create_counter(
                "asm.runs.completed",
                unit="{run}",
                description="Runs that ended, by provider and status "
                "(completed, failed, cancelled, timeout)",
            ),
            run_duration=meter.create_histogram(
                "asm.run.duration",
                unit="s",
                description="Run wall time from run_started to its terminal event",
                explicit_bucket_boundaries_advisory=RUN_DURATION_BUCKETS,
            ),
            time_to_first_token=meter.create_histogram(
                "asm.provider.time_to_first_token",
                unit="s",
                description="From the start of a provider attempt until its first streamed "
                "token is in the event store (readable by clients)",
                explicit_bucket_boundaries_advisory=TTFT_BUCKETS,
            ),
            tokens=meter.create_counter(
                "asm.tokens",
                unit="{token}",
                description="Tokens of completed provider calls, by kind "
                "(input, output, cache_read, cache_creation)",
            ),
            retries=meter.create_counter(
                "asm.provider.retries",
                unit="{retry}",
                description="Provider attempts that failed with a retryable error and will be "
                "retried by Temporal, by error code",
            ),
            active_sessions=meter.create_up_down_counter(
                "asm.sessions.active",
                unit="{session}",
                description="Sessions created and not yet ended (sum over workers)",
            ),
            active_runs=meter.create_up_down_counter(
                "asm.runs.active",
                unit="{run}",
                description="Runs started and not yet ended (sum over workers)",
            ),
        )


@functools.cache
def instruments() -> Instruments:
    """The instruments on the global meter (a proxy until a meter provider is installed)."""
    return Instruments.create(metrics.get_meter(INSTRUMENTATION_NAME))


def tracer() -> trace.Tracer:
    """The application tracer (resolved through the global provider at each use)."""
    return trace.get_tracer(INSTRUMENTATION_NAME)


# --- the provider span -----------------------------------------------------------------------

SESSION_TERMINAL = {
    EventType.SESSION_COMPLETED.value,
    EventType.SESSION_FAILED.value,
    EventType.SESSION_CANCELLED.value,
}
RUN_TERMINAL = {
    EventType.RUN_COMPLETED.value: "completed",
    EventType.RUN_FAILED.value: "failed",
    EventType.RUN_CANCELLED.value: "cancelled",
    EventType.RUN_TIMEOUT.value: "timeout",
}


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
        from agent_session_manager.worker.log_config import log_context

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
                span.set_status(Status(StatusCode.ERROR, f"{code}: {exc.message}"))
                span.record_exception(exc)
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
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
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


def _first_token(drafts: Sequence[Any]) -> None:
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


# --- the event store: write spans and lifecycle metrics --------------------------------------

#: Store methods that write; each gets a child span. Reads are not traced (followers poll).
TRACED_WRITES = ("append", "record", "save_messages", "mark_rolled_back")

#: Runs whose start time the instrumented store remembers for ``asm.run.duration``.
MAX_TIMED_RUNS = 10_000


class InstrumentedStore:
    """An :class:`store.EventStore` whose writes are spans and whose lifecycle writes count.

    Wraps the worker's store (``build_worker``); everything else passes through unchanged.
    Spans: ``asm.store.<method>`` (kind CLIENT) with ``db.system.name``, ``db.operation.name``,
    ``asm.session_id``, ``asm.run_id``, ``asm.events.count`` and ``asm.events.written``.
    Metrics come from ``record``: only a *newly written* lifecycle event counts.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self.__wrapped__ = store
        # run id -> when this worker recorded its run_started: durations without a read on
        # the run's hot path. Insertion-ordered, so the oldest go first when it is full.
        self._started: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __repr__(self) -> str:
        return f"InstrumentedStore({self._store!r})"

    @contextmanager
    def _span(self, operation: str, attributes: dict[str, Any]) -> Iterator[trace.Span]:
        attrs = {
            "db.system.name": getattr(self._store, "backend", "sql"),
            "db.operation.name": operation,
            **{k: v for k, v in attributes.items() if v is not None},
        }
        with tracer().start_as_current_span(
            f"asm.store.{operation}", kind=SpanKind.CLIENT, attributes=attrs
        ) as span:
            yield span

    async def append(self, drafts: Sequence[Any]) -> Any:
        first = drafts[0] if drafts else None
        with self._span(
            "append",
            {
                "asm.session_id": getattr(first, "session_id", None),
                "asm.run_id": getattr(first, "run_id", None),
                "asm.events.count": len(drafts),
            },
        ) as span:
            written = await self._store.append(drafts)
            span.set_attribute("asm.events.written", len(written))
        _first_token(drafts)
        return written

    async def save_messages(
        self,
        session_id: str,
        run_id: str,
        turn: int,
        messages: Sequence[Any],
        events: Sequence[Any] = (),
        record: Any = None,
    ) -> Any:
        count = len(events) + (record is not None)
        with self._span(
            "save_messages",
            {
                "asm.session_id": session_id,
                "asm.run_id": run_id,
                "asm.events.count": count,
                "asm.event.type": None if record is None else record.type,
            },
        ) as span:
            written = await self._store.save_messages(
                session_id, run_id, turn, messages, events, record
            )
            span.set_attribute("asm.events.written", len(written))
        _first_token(events)
        if record is not None and any(e.id == record.event_id for e in written):
            await self._observe_lifecycle(record)
        return written

    async def mark_rolled_back(self, run_id: str) -> None:
        with self._span("mark_rolled_back", {"asm.run_id": run_id}):
            await self._store.mark_rolled_back(run_id)

    async def record(self, rec: Any) -> Any:
        with self._span(
            "record",
            {
                "asm.session_id": rec.session_id,
                "asm.run_id": rec.run_id,
                "asm.event.type": rec.type,
                "asm.events.count": 1,
            },
        ) as span:
            event = await self._store.record(rec)
            span.set_attribute("asm.events.written", 0 if event is None else 1)
        if event is not None:
            await self._observe_lifecycle(rec)
        return event

    async def _observe_lifecycle(self, rec: Any) -> None:
        try:
            await self._count_lifecycle(rec)
        except Exception:  # metrics must never fail a lifecycle write
            log.warning("lifecycle metrics failed for %s", rec.type, exc_info=True)

    async def _count_lifecycle(self, rec: Any) -> None:
        inst = instruments()
        provider = {"asm.provider": rec.provider or "unknown"}
        if rec.type == EventType.SESSION_CREATED.value:
            inst.active_sessions.add(1, provider)
        elif rec.type in SESSION_TERMINAL:
            inst.active_sessions.add(-1, provider)
        elif rec.type == EventType.RUN_STARTED.value:
            inst.runs_started.add(1, provider)
            inst.active_runs.add(1, provider)
            self._started.setdefault(rec.run_id, time.monotonic())
            while len(self._started) > MAX_TIMED_RUNS:  # runs whose end another worker saw
                self._started.pop(next(iter(self._started)))
        elif rec.type in RUN_TERMINAL:
            status = RUN_TERMINAL[rec.type]
            attrs = {**provider, "asm.run.status": status}
            err = rec.data.get("error") if isinstance(rec.data, dict) else None
            if isinstance(err, dict) and err.get("code"):
                attrs["error.type"] = str(err["code"])
            inst.runs_completed.add(1, attrs)
            inst.active_runs.add(-1, provider)
            started = self._started.pop(rec.run_id, None)
            if started is not None:
                seconds: float | None = time.monotonic() - started
            else:  # started on another worker (or before a restart): the run row knows
                seconds = await self._row_duration(rec.run_id)
            if seconds is not None:
                inst.run_duration.record(seconds, {**provider, "asm.run.status": status})

    async def _row_duration(self, run_id: str | None) -> float | None:
        row = await self._store.get_run(run_id) if run_id else None
        if row is None or row.started_at is None or row.ended_at is None:
            return None
        seconds: float = (row.ended_at - row.started_at).total_seconds()
        return max(seconds, 0.0)


def instrument_store(store: T) -> T:
    """``store`` wrapped in :class:`InstrumentedStore` (idempotent)."""
    if isinstance(store, InstrumentedStore):
        return store
    return InstrumentedStore(store)  # type: ignore[return-value]
