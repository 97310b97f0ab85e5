"""The one worker assembly: both workflows and every activity, on one task queue.

``asm dev``, ``asm worker``, ``asm demo`` (through ``cli.runtime``), the benchmark and the
tests all run their worker through :func:`serve`, so what they run is what a deployment runs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from agent_session_manager.activities.content import ContentActivities
from agent_session_manager.activities.lifecycle import LifecycleActivities
from agent_session_manager.activities.limits import FleetLimits
from agent_session_manager.activities.ownership import OwnershipActivities
from agent_session_manager.activities.provider import ProviderActivities
from agent_session_manager.activities.providers import discover
from agent_session_manager.activities.providers.base import Provider
from agent_session_manager.activities.tools import Tool, ToolActivities, discover_tools
from agent_session_manager.core.budget import BudgetPolicy
from agent_session_manager.core.prices import PriceTable
from agent_session_manager.observability.instrumented_store import instrument_store
from agent_session_manager.store import EventStore
from agent_session_manager.worker.sandbox import workflow_runner
from agent_session_manager.worker.settings import (
    Settings,
    price_table,
    provider_secrets,
)
from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.agent_session import AgentSession


@asynccontextmanager
async def serve(
    client: Client,
    store: EventStore,
    *,
    task_queue: str | None = None,
    providers: dict[str, Provider] | None = None,
    secrets: dict[str, str] | None = None,
    settings: Settings | None = None,
    max_cached_workflows: int | None = None,
    prices: PriceTable | None = None,
    budgets: BudgetPolicy | None = None,
    tools: Sequence[Tool] | None = None,
) -> AsyncIterator[Worker]:
    """Run a worker against ``store`` for the duration of the block, then shut it down.

    Defaults: the task queue of ``settings`` (``ASM_TASK_QUEUE``), the providers found by
    discovery, the provider credentials in this process's environment, the workflow cache size
    of ``settings`` (``ASM_MAX_CACHED_SESSIONS``; 0 makes every workflow task replay its
    history), the price table and budgets of ``settings`` (``ASM_PRICES_FILE``,
    ``ASM_BUDGETS``). Tools: those found by discovery (entry points and ``ASM_TOOLS``) plus
    ``tools``. Tracing comes with
    ``client``: a client connected with the OpenTelemetry plugin hands it to the worker.
    """
    settings = settings or Settings()
    # Event-store writes become spans; lifecycle writes feed the run/session metrics.
    store = instrument_store(store)
    providers = discover() if providers is None else providers
    installed = discover_tools(settings.tools)
    installed.update((t.name, t) for t in tools or ())
    secrets = provider_secrets() if secrets is None else secrets
    limits = settings.fleet_limits()
    fleet = (
        FleetLimits(store, limits, secrets, identity=f"{socket.gethostname()}:{os.getpid()}")
        if limits.active or limits.sessions_limited
        else None
    )
    provider_activities = ProviderActivities(
        store,
        providers,
        secrets=secrets,
        prices=price_table(settings) if prices is None else prices,
        budgets=settings.budget_policy() if budgets is None else budgets,
        tools={name: t.spec for name, t in installed.items()},
        fleet=fleet,
        heartbeat_every=settings.heartbeat_throttle_seconds,
    )
    tool_activities = ToolActivities(store, installed)
    lifecycle = LifecycleActivities(store, providers)
    content = ContentActivities(store)
    ownership = OwnershipActivities(store, fleet=fleet)
    # Cancellation reaches an activity only in a heartbeat response: the default throttle
    # (up to 60 s) would make cancel take that long.
    throttle = timedelta(seconds=settings.heartbeat_throttle_seconds)
    worker = Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[AgentSession, AgentRun],
        activities=[
            provider_activities.stream_provider,
            tool_activities.execute_tool,
            lifecycle.record_lifecycle,
            lifecycle.provider_catalog,
            lifecycle.rollback_run,
            lifecycle.request_cancel,
            content.store_content,
            ownership.claim_session,
            ownership.claim_run,
        ],
        max_heartbeat_throttle_interval=throttle,
        default_heartbeat_throttle_interval=throttle,
        max_cached_workflows=(
            settings.max_cached_sessions if max_cached_workflows is None else max_cached_workflows
        ),
        workflow_runner=workflow_runner(client.data_converter),
        # Temporal echoes an update's request in the workflow's accept/reject reply, so an
        # update just under the server's 2 MiB request limit makes that reply exceed the SDK's
        # own 2 MiB check: the task would fail on every retry and wedge the session (found by
        # tests/chaos/test_fuzz.py). Without the local check the server decides: it refuses
        # that update (FAILED_PRECONDITION) and the session goes on. Our own payloads stay far
        # below the limit by the bounds in core.contract.
        disable_payload_error_limit=True,
    )
    async with worker:
        yield worker
