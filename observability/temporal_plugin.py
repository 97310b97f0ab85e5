"""Temporal's OpenTelemetry plugin on clients (and so on the workers built from them)."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, Plugin

from agent_session_manager.observability.detach_filter import quiet_eviction_detach
from agent_session_manager.observability.tracing import tracing_enabled


def temporal_plugins() -> list[Plugin]:
    """Plugins for ``Client.connect``: Temporal's OpenTelemetry plugin when tracing is on.

    Registered on the client, it applies to that client's calls *and* to every worker built
    from the client (registering it on both would duplicate spans).
    """
    if not tracing_enabled():
        return []
    from temporalio.contrib.opentelemetry import OpenTelemetryPlugin

    quiet_eviction_detach()

    # add_temporal_spans: client, workflow and activity spans, not only context propagation.
    return [OpenTelemetryPlugin(add_temporal_spans=True)]


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
