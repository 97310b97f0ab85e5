"""Clients get Temporal's tracing plugin only when tracing is on."""

from __future__ import annotations

from agent_session_manager.observability import temporal_plugin, tracing
from tests.observability.conftest import Otel


def test_plugins_only_when_tracing_is_enabled(otel: Otel) -> None:
    from temporalio.contrib.opentelemetry import OpenTelemetryPlugin

    # The session's in-memory provider is replay-safe, so tracing counts as enabled here.
    assert tracing.tracing_enabled()
    (plugin,) = temporal_plugin.temporal_plugins()
    assert isinstance(plugin, OpenTelemetryPlugin)
