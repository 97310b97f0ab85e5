"""The Temporal SDK's own metrics, served for Prometheus on ``ASM_PROMETHEUS_BIND``."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from agent_session_manager.core.errors import error


@functools.cache
def _prometheus_runtime(bind: str) -> Runtime:
    # One Runtime per process and address: a second one would fail to bind the port.
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))
    except ValueError as exc:  # the SDK's word for a malformed or busy address
        raise error(
            "validation_error",
            f"ASM_PROMETHEUS_BIND={bind!r}: {exc}; use host:port of a free port "
            "(e.g. 127.0.0.1:9464), or unset it",
            details={"variable": "ASM_PROMETHEUS_BIND", "value": bind},
        ) from exc


def temporal_runtime(environ: Mapping[str, str] | None = None) -> Runtime | None:
    """The SDK runtime for ``Client.connect(runtime=…)``: Prometheus on ``ASM_PROMETHEUS_BIND``.

    ``None`` (the SDK's default runtime) when the variable is unset. The endpoint serves the
    Temporal SDK's own metrics (task latencies, slots, polls, activity/workflow counters) in
    Prometheus text format at ``http://<bind>/metrics``.
    """
    env = os.environ if environ is None else environ
    bind = env.get("ASM_PROMETHEUS_BIND", "").strip()
    return _prometheus_runtime(bind) if bind else None
