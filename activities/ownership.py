"""Local activities that claim ids in the store before a session or run writes anything.

A rejection (``session_already_exists``, ``validation_error``) is final; a storage failure is
retried until the store is back, like every lifecycle write (the workflow's retry policy
bounds the wait between tries).
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from agent_session_manager.activities.limits import FleetLimits
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.ownership import RunClaim, SessionClaim
from agent_session_manager.core.protocol import CLAIM_RUN_ACTIVITY, CLAIM_SESSION_ACTIVITY
from agent_session_manager.core.temporal import to_application_error
from agent_session_manager.store import EventStore


@dataclass
class OwnershipActivities:
    """Claims of session and run ids, enforced by the store."""

    store: EventStore
    #: Fleet-wide session limits; none when the worker has no limits configured.
    fleet: FleetLimits | None = None

    @activity.defn(name=CLAIM_SESSION_ACTIVITY)
    async def claim_session(self, claim: SessionClaim) -> None:
        """Claim ``claim.session_id`` for the session workflow ``claim.owner``, and admit it
        against the fleet-wide session limits (``max_sessions_exceeded``)."""
        try:
            await self.store.claim_session(
                claim.session_id, claim.owner, claim.workflow_id, claim.tenant
            )
            if self.fleet is not None:
                await self.fleet.admit_session(claim.session_id, claim.agent_id, claim.tenant)
        except AsmError as err:
            err = _retry_storage(err)
            if err.code == "max_sessions_exceeded" and self.fleet is not None:
                # "queue": the session waits (pending, not ready) while the local activity is
                # retried by the workflow's lifecycle policy, until a slot frees.
                err.retryable = self.fleet.limits.session_overflow == "queue"
            raise to_application_error(err) from err

    @activity.defn(name=CLAIM_RUN_ACTIVITY)
    async def claim_run(self, claim: RunClaim) -> None:
        """Claim ``claim.run_id`` for the session ``claim.session_id``."""
        try:
            await self.store.claim_run(claim.run_id, claim.session_id)
        except AsmError as err:
            raise to_application_error(_retry_storage(err)) from err


def _retry_storage(err: AsmError) -> AsmError:
    # No claim means no start and no run: wait for the store rather than refuse the caller.
    err.retryable = err.category == "storage"
    return err
