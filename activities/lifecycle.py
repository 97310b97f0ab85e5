"""Local activities the workflows use for lifecycle bookkeeping.

Workflows may not do I/O, so every lifecycle event and read-model change goes through
``record_lifecycle``: one transaction, idempotent by the event's deterministic id, so a
replayed or retried local activity writes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from agent_session_manager.activities.providers.base import Provider, info
from agent_session_manager.core.contract import (
    CancelRequest,
    LifecycleRecord,
    ProviderCatalog,
)
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.protocol import (
    PROVIDER_CATALOG_ACTIVITY,
    RECORD_LIFECYCLE_ACTIVITY,
    REQUEST_CANCEL_ACTIVITY,
    ROLLBACK_RUN_ACTIVITY,
)
from agent_session_manager.core.temporal import to_application_error
from agent_session_manager.store import EventStore


@dataclass
class LifecycleActivities:
    """Store-side activities for the session and run workflows."""

    store: EventStore
    providers: dict[str, Provider]

    @activity.defn(name=RECORD_LIFECYCLE_ACTIVITY)
    async def record_lifecycle(self, rec: LifecycleRecord) -> None:
        """Append one lifecycle event and apply its read-model change, atomically."""
        try:
            await self.store.record(rec)
        except AsmError as err:
            # A lifecycle event must not be lost: whatever the store says, wait for it to come
            # back (the workflow's retry policy bounds the wait between attempts).
            if err.category == "storage":
                err.retryable = True
            raise to_application_error(err) from err

    @activity.defn(name=PROVIDER_CATALOG_ACTIVITY)
    async def provider_catalog(self) -> ProviderCatalog:
        """The providers this worker runs, with their capabilities."""
        return ProviderCatalog(providers={name: info(p) for name, p in self.providers.items()})

    @activity.defn(name=REQUEST_CANCEL_ACTIVITY)
    async def request_cancel(self, req: CancelRequest) -> None:
        """Ask Temporal to cancel ``req``'s execution, with ``req.reason`` as the request's cause.

        A workflow can end Canceled only when Temporal was asked to cancel it, and the server
        refuses a workflow's request to cancel itself: a session cancelled by its ``cancel``
        signal asks from here, so it ends Canceled like one cancelled with ``temporal workflow
        cancel``, the reason in its history (the Temporal UI shows it, and ``Canceled`` filters
        find it). An execution that has already closed has nothing left to cancel.
        """
        handle = activity.client().get_workflow_handle(req.workflow_id, run_id=req.run_id)
        try:
            await handle.cancel(reason=req.reason)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise  # retried by the local activity's policy: Temporal will answer

    @activity.defn(name=ROLLBACK_RUN_ACTIVITY)
    async def rollback_run(self, run_id: str) -> None:
        """Drop a run's messages from the conversation (multitask strategy ``rollback``)."""
        try:
            await self.store.mark_rolled_back(run_id)
        except AsmError as err:
            raise to_application_error(err) from err
