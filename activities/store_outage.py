"""Riding out an event-store outage inside one provider attempt.

A store that is down (PostgreSQL restarting, SQLite locked) or full is not the provider's
fault, and the provider's retry budget must not pay for it: five attempts spent on a 30-second
PostgreSQL restart would fail every run in flight, and each retry would call the model again.
So the provider activity waits for the store *inside* the attempt, on its own budget:

* backing off from :data:`INITIAL_DELAY_S` to :data:`MAX_DELAY_S` between tries,
* heartbeating at least every :data:`HEARTBEAT_EVERY_S` while it waits (the activity's
  heartbeat timeout is a few seconds, and cancellation only arrives with a heartbeat),
* until the activity's own deadline (schedule-to-close, which the run workflow sets to the run
  deadline plus a margin): past it the error goes to Temporal as usual.

Only :data:`OUTAGE_CODES` are waited for; a broken query or a constraint violation is not
going to heal and fails at once. Every store write the activity makes is idempotent (event ids
are deterministic, read-model changes are sets), so a write whose commit was in doubt is
simply made again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from agent_session_manager.core.errors import AsmError, ErrorCode

log = logging.getLogger(__name__)

T = TypeVar("T")

Heartbeat = Callable[..., None]

#: Store failures that mean "not now" rather than "never".
OUTAGE_CODES: frozenset[ErrorCode] = frozenset({"storage_connection_failed", "storage_full"})

#: First pause after a failed store call; doubled up to :data:`MAX_DELAY_S`. A restarting
#: PostgreSQL answers again within seconds, so tries stay frequent enough not to add much.
INITIAL_DELAY_S = 0.1
MAX_DELAY_S = 2.0
#: Below every heartbeat timeout a run may set (the smallest allowed is 1 s).
HEARTBEAT_EVERY_S = 0.5


def is_outage(err: BaseException) -> bool:
    """Whether ``err`` is a store failure worth waiting out."""
    return isinstance(err, AsmError) and err.code in OUTAGE_CODES


def activity_deadline(
    scheduled: datetime, schedule_to_close: timedelta | None, now: datetime | None = None
) -> float:
    """The activity's schedule-to-close deadline on the monotonic clock (inf without one)."""
    if schedule_to_close is None or not schedule_to_close:
        return float("inf")
    left = (scheduled + schedule_to_close - (now or datetime.now(UTC))).total_seconds()
    return time.monotonic() + left


@dataclass
class StoreOutage:
    """The waiting policy of one attempt, and what it waited (for logs and spans)."""

    heartbeat: Heartbeat
    deadline: float = float("inf")
    initial_delay: float = INITIAL_DELAY_S
    max_delay: float = MAX_DELAY_S
    #: Failed store calls this attempt has waited out.
    failures: int = 0
    _since: float | None = None

    @property
    def ongoing(self) -> bool:
        """A store call failed and none has succeeded since."""
        return self._since is not None

    def allows(self, delay: float) -> bool:
        """Whether a pause of ``delay`` still ends before the deadline."""
        return time.monotonic() + delay < self.deadline

    def noticed(self, err: AsmError, what: str) -> None:
        """Count one failure; log the outage once, when it starts."""
        self.failures += 1
        if self._since is None:
            self._since = time.monotonic()
            log.warning("event store unavailable while %s; waiting for it: %s", what, err)

    def recovered(self, what: str) -> None:
        """The store answered: log how long the outage lasted, once."""
        if self._since is not None:
            log.warning(
                "event store back after %.1fs (while %s; %d failed calls so far)",
                time.monotonic() - self._since,
                what,
                self.failures,
            )
            self._since = None

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, heartbeating all along."""
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            self.heartbeat()
            await asyncio.sleep(min(left, HEARTBEAT_EVERY_S))

    async def outlast(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        """``await op()``, again and again while the store is out, until the deadline."""
        delay = self.initial_delay
        while True:
            try:
                result = await self._beating(op())
            except AsmError as err:
                if not is_outage(err) or not self.allows(delay):
                    raise
                self.noticed(err, what)
                await self._pause(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            self.recovered(what)
            return result

    async def _beating(self, call: Awaitable[T]) -> T:
        """Await ``call``, heartbeating while it takes long: a store call can hang for seconds
        (SQLite waiting out another writer's lock, a PostgreSQL connect timing out), longer
        than the heartbeat timeout, which would end the attempt."""
        task = asyncio.ensure_future(call)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_S)
                if done:
                    return task.result()
                self.heartbeat()
        finally:
            if not task.done():  # we are being cancelled: let the call go with us
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
