"""The session workflow's claims on its ids, made in the store before it writes anything.

A start whose session id another session workflow owns fails at once with
``session_already_exists``; a ``submit_run`` whose run id another session owns is rejected
with ``validation_error``; in both cases nothing has been written (:mod:`store._ownership`
holds the rule, the database's primary keys decide races).

Patch ``store-ownership``: the claims are new local activities, i.e. new commands; histories
recorded before it (``tests/histories/before-store-ownership``) replay without them. The patch
is decided once per execution, in its first activation (:func:`enforcing`, the default of
``Execution.owns_ids``), never later: a patch marker first recorded after a local activity
had ended the previous workflow task does not replay (the SDK reports "patch marker
encountered … but there is no corresponding change command"; seen in a recorded session whose
first task ended on the provider-catalog lookup), and a session started before the patch keeps
its old command sequence for the rest of its execution.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

from agent_session_manager.workflows.inputs import fail
from agent_session_manager.workflows.lifecycle import LIFECYCLE_RETRY, LOCAL_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.ownership import RunClaim, SessionClaim
    from agent_session_manager.core.protocol import CLAIM_RUN_ACTIVITY, CLAIM_SESSION_ACTIVITY
    from agent_session_manager.core.temporal import from_failure

STORE_OWNERSHIP = "store-ownership"


def enforcing() -> bool:
    """Whether this execution claims its ids; call it in the first activation only."""
    return workflow.patched(STORE_OWNERSHIP)


async def claim_session(
    session_id: str, *, enforced: bool, agent_id: str = "", tenant: str = ""
) -> None:
    """Own ``session_id`` as this workflow (its first execution), or fail the workflow.

    The same local activity admits the session against the fleet-wide session limits
    (``max_sessions_exceeded``), so a limit adds no command to the session's history.
    """
    if not enforced:
        return
    info = workflow.info()
    claim = SessionClaim(
        session_id=session_id,
        owner=info.first_execution_run_id,
        workflow_id=info.workflow_id,
        agent_id=agent_id,
        tenant=tenant,
    )
    await _claim(CLAIM_SESSION_ACTIVITY, claim)


async def claim_run(run_id: str, session_id: str, *, enforced: bool) -> None:
    """Own ``run_id`` for this session, or reject the update (``validation_error``)."""
    if not enforced:
        return
    await _claim(CLAIM_RUN_ACTIVITY, RunClaim(run_id=run_id, session_id=session_id))


async def _claim(activity: str, claim: SessionClaim | RunClaim) -> None:
    try:
        await workflow.execute_local_activity(
            activity,
            claim,
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=LIFECYCLE_RETRY,  # the store being down delays the claim, never drops it
        )
    except ActivityError as exc:
        fail(from_failure(exc))


__all__ = ["STORE_OWNERSHIP", "claim_run", "claim_session", "enforcing"]
