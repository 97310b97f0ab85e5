"""A Temporal connection for workers and the CLI: our data converter, tracing and SDK metrics."""

from __future__ import annotations

import asyncio
import time

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RetryConfig, RPCError

from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.observability.prometheus import temporal_runtime
from agent_session_manager.observability.temporal_plugin import temporal_plugins


async def connect_temporal(
    address: str, namespace: str, *, retry_config: RetryConfig | None = None
) -> Client:
    """A Temporal client with our data converter, or a clear error saying what to do.

    ``retry_config`` bounds the SDK's own retries inside each call (default: ~10 s).
    """
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            data_converter=data_converter,
            retry_config=retry_config,
            plugins=temporal_plugins(),  # OpenTelemetry tracing, when OTEL_TRACES_EXPORTER is set
            runtime=temporal_runtime(),  # Prometheus SDK metrics, when ASM_PROMETHEUS_BIND is set
        )
    except (RPCError, RuntimeError) as exc:
        raise error(
            "temporal_unavailable",
            f"cannot reach Temporal at {address} ({exc}); start one with `asm dev`, "
            "or set ASM_TEMPORAL_ADDRESS to your cluster's frontend",
            details={"address": address},
        ) from exc


async def connect_when_ready(address: str, namespace: str, *, wait: float = 0.0) -> Client:
    """:func:`connect_temporal`, retrying for up to ``wait`` seconds until the server answers.

    In docker-compose the frontend port opens before the server answers; ``--wait`` covers that.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            client = await connect_temporal(address, namespace)
            # Connecting is lazy about the cluster's health: ask it something cheap.
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except (AsmError, RPCError):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1.0)
