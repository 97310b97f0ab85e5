"""Tracing, metrics and log context: OpenTelemetry configured from the standard ``OTEL_*``
variables, below activities and store (it imports only ``core``).

Traces
    :func:`~observability.config.configure` installs a replay-safe tracer provider
    (``temporalio.contrib.opentelemetry.create_tracer_provider``) when ``OTEL_TRACES_EXPORTER``
    names an exporter (``otlp``, ``console``; default ``none``). Clients connected with
    :func:`~observability.temporal_plugin.temporal_plugins` (or wrapped by
    :func:`~observability.temporal_plugin.instrument_client`) then carry Temporal's
    ``OpenTelemetryPlugin``: a ``submit_run`` call starts a client span, the update handler,
    the ``AgentRun`` child workflow and its activities continue that trace through Temporal
    headers, and workers built from such a client inherit the plugin. Inside the provider
    activity, :func:`~observability.provider_call.traced_provider_call` opens one GenAI span
    per model call (attempt) and :class:`~observability.instrumented_store.InstrumentedStore`
    adds a child span per event-store write. So one run is one trace:
    ``StartWorkflowUpdate:submit_run → HandleUpdate:submit_run → StartChildWorkflow:AgentRun →
    RunWorkflow:AgentRun → StartActivity/RunActivity: stream_provider → chat <model> →
    asm.store.*``.

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
    (:func:`~observability.prometheus.temporal_runtime`).

Without exporters everything here is a no-op through OpenTelemetry's proxy providers.
"""
