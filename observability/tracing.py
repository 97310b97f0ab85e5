"""The application tracer, and whether tracing is on."""

from __future__ import annotations

from opentelemetry import trace

INSTRUMENTATION_NAME = "agent_session_manager"


def tracer() -> trace.Tracer:
    """The application tracer (resolved through the global provider at each use)."""
    return trace.get_tracer(INSTRUMENTATION_NAME)


def tracing_enabled() -> bool:
    """True when the global tracer provider is replay-safe (what the Temporal plugin needs)."""
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    return isinstance(trace.get_tracer_provider(), ReplaySafeTracerProvider)
