"""A worker process's logs, traces and metrics, configured from the environment in one call.

``asm worker`` and ``asm dev`` both call :func:`configure_observability`, so a setting that
works for one works for the other: ``ASM_LOG_LEVEL`` / ``ASM_LOG_FORMAT`` (logging), the
``OTEL_*`` variables (tracer and meter providers) and ``ASM_PROMETHEUS_BIND`` (the Temporal
SDK's metrics endpoint, served by the runtime that ``connect_temporal`` hands its clients).
"""

from __future__ import annotations

from agent_session_manager.observability import config as telemetry
from agent_session_manager.observability.prometheus import temporal_runtime
from agent_session_manager.worker.log_config import configure_logging
from agent_session_manager.worker.settings import Settings


def configure_observability(settings: Settings) -> telemetry.Telemetry:
    """Install logging and telemetry for this process; call before connecting to Temporal.

    Before connecting, so the client carries the tracing plugin and the SDK runtime with
    the Prometheus endpoint. The endpoint is bound here, at start: a bad or busy
    ``ASM_PROMETHEUS_BIND`` fails now, not at the first connection. Call
    ``telemetry.shutdown()`` (:mod:`observability.config`) before exit to flush exporters.
    """
    configure_logging(settings)
    installed = telemetry.configure()
    temporal_runtime()
    return installed
