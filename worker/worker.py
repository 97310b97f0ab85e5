"""Worker assembly: workflows, activities and their injected dependencies on one task queue."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from agent_session_manager.activities.lifecycle import LifecycleActivities
from agent_session_manager.activities.provider import ProviderActivities
from agent_session_manager.activities.providers import discover
from agent_session_manager.activities.providers.base import Provider
from agent_session_manager.store import EventStore
from agent_session_manager.worker.settings import Settings, provider_secrets
from agent_session_manager.worker.telemetry import instrument_store
from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.agent_session import AgentSession


def build_worker(
    client: Client,
    store: EventStore,
    *,
    task_queue: str,
    providers: dict[str, Provider] | None = None,
    secrets: dict[str, str] | None = None,
    settings: Settings | None = None,
    max_cached_workflows: int | None = None,
) -> Worker:
    """A worker running both workflows and every activity against ``store``."""
    settings = settings or Settings()
    # Event-store writes become spans; lifecycle writes feed the run/session metrics.
    store = instrument_store(store)
    providers = discover() if providers is None else providers
    provider_activities = ProviderActivities(
        store, providers, secrets=provider_secrets() if secrets is None else secrets
    )
    lifecycle = LifecycleActivities(store, providers)
    extra = {} if max_cached_workflows is None else {"max_cached_workflows": max_cached_workflows}
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[AgentSession, AgentRun],
        activities=[
            provider_activities.stream_provider,
            lifecycle.record_lifecycle,
            lifecycle.provider_catalog,
            lifecycle.rollback_run,
        ],
        # Cancellation reaches an activity only in a heartbeat response: the default
        # throttle (up to 60 s) would make cancel take that long.
        max_heartbeat_throttle_interval=timedelta(seconds=settings.heartbeat_throttle_seconds),
        default_heartbeat_throttle_interval=timedelta(seconds=settings.heartbeat_throttle_seconds),
        **extra,  # type: ignore[arg-type]
    )
