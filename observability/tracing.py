"""The application tracer, and whether tracing is on."""

from __future__ import annotations

import functools

from opentelemetry import trace

INSTRUMENTATION_NAME = "agent_session_manager"


@functools.cache
def tracer() -> trace.Tracer:
    """The application tracer, resolved once: OpenTelemetry sets its global provider once per
    process, and until it is set ``get_tracer`` returns a proxy that follows it from then on.
    (Resolving it per span cost a provider lookup and a new tracer on every store write.)"""
    return trace.get_tracer(INSTRUMENTATION_NAME)


def tracing_enabled() -> bool:
    """True when the global tracer provider is replay-safe (what the Temporal plugin needs)."""
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    return isinstance(trace.get_tracer_provider(), ReplaySafeTracerProvider)
