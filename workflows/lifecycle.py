"""How workflows write lifecycle events: the ``record_lifecycle`` local activity.

Shared by both workflows so the timeout and retry rules live in one place. A lifecycle event
must not be lost, so storage failures are retried until the store is back (the activity marks
them retryable); a non-retryable error here is a bug, and fails loudly.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.contract import (
        LifecycleRecord,
    )
    from agent_session_manager.core.protocol import (
        RECORD_LIFECYCLE_ACTIVITY,
    )

#: Local activities only touch our own database; a short timeout surfaces a wedged store fast.
LOCAL_TIMEOUT = timedelta(seconds=30)

#: Unlimited attempts, backing off to 5 s: an outage of the store delays, never drops, events.
LIFECYCLE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
)


async def record(rec: LifecycleRecord) -> None:
    """Append one lifecycle event and its read-model change (idempotent by ``rec.event_id``)."""
    await workflow.execute_local_activity(
        RECORD_LIFECYCLE_ACTIVITY,
        rec,
        start_to_close_timeout=LOCAL_TIMEOUT,
        retry_policy=LIFECYCLE_RETRY,
    )
