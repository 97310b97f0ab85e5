"""Fleet-wide limits, applied inside the provider activity: ``async with fleet.lease(...)``.

Before a provider call the activity (1) waits out a rate-limit cooldown another worker may
have set for its credential and model, (2) takes a run slot in every scope that limits it
(:mod:`core.limits`), waiting in the fair queue if one is full, and (3) spends one call of the
credential's per-minute budget. Every wait heartbeats (a cancel reaches a queued run at once)
and is recorded as a ``run_queued`` event (status ``pending``, with its position and reason);
``run_started`` follows when the wait is over. The slot is renewed while held and released in
``finally`` — on success, failure, cancel and timeout alike; a worker that dies stops
renewing, and its slot is reclaimed once the lease expires (the activity's heartbeat timeout).

A 429/529 seen by any worker (:meth:`FleetLimits.note_failure`) sets the shared cooldown, and
the attempt's ``next_retry_delay`` is the time left of it: Temporal still retries, never
before the provider is willing to answer.

Why in the store and not in Temporal: task-queue rate limits (``max_task_queue_activities_per
_second``) bound starts per second, not calls in flight, and cannot see a 429; a worker's
``max_concurrent_activities`` is per process. Fairness keys order a task queue's backlog, but
a slot must span the whole provider call, survive the worker and cover scopes (model,
credential, tenant) that cut across queues. The store is the one durable component every
worker already shares; a lease row with an expiry is what survives ``kill -9``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent_session_manager.core.contract import LifecycleRecord, RunPatch, RunSpec
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.limits import (
    Limits,
    cooldown_key,
    credential_id,
    finite_delay,
    run_scopes,
    session_scopes,
)
from agent_session_manager.core.status import RunStatus
from agent_session_manager.observability.metrics import instruments
from agent_session_manager.store import EventStore, SlotRequest, session_lease_id

log = logging.getLogger(__name__)

#: Which of the worker's secrets make up a provider's credential (its key and where it
#: sends it); a provider not listed is keyed by all of them.
CREDENTIAL_SECRETS: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"),
    "claude_code": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"),
    "codex": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
}
#: A new ``run_queued`` event while waiting at most this often (each is a row in the log).
QUEUED_EVENT_INTERVAL_S = 30.0
#: Codes that say "the provider is saturated": a cooldown for everyone using the credential.
_SATURATED = ("provider_rate_limited",)


def _epoch() -> float:
    return time.time()


@dataclass
class FleetLimits:
    """The worker's view of the deployment's limits, kept in ``store``."""

    store: EventStore
    limits: Limits = field(default_factory=Limits)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    #: Names this worker in lease rows (host and pid by default).
    identity: str = ""

    def credential(self, provider: str) -> str:
        names = CREDENTIAL_SECRETS.get(provider)
        chosen = {k: v for k, v in self.secrets.items() if names is None or k in names}
        return credential_id(provider, chosen)

    # --- runs ------------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(
        self,
        spec: RunSpec,
        *,
        attempt: int,
        model: str,
        heartbeat: Callable[..., None],
        ttl: float,
        step: int = 1,
    ) -> AsyncIterator[None]:
        """Wait for cooldown, slot and budget (recording each wait), hold the slot, free it."""
        credential = self.credential(spec.provider)
        key = cooldown_key(credential, model)
        waits = _Waits(self.store, spec, attempt, model, step)
        await self._cool_down(key, waits, heartbeat)
        scopes = run_scopes(
            self.limits,
            provider=spec.provider,
            model=model,
            credential=credential,
            tenant=spec.tenant or "",
        )
        if not scopes:
            await self._budget(credential, waits, heartbeat)
            yield
            return
        req = SlotRequest(
            lease_id=f"run:{spec.run_id}"[:255],
            kind="run",
            holder=f"{self.identity}/a{attempt}"[:255],
            scopes=scopes,
            tenant=spec.tenant or "",
            session_id=spec.session_id,
        )
        metrics = instruments()
        held = False
        renewer: asyncio.Task[None] | None = None
        try:
            await self._acquire(req, waits, heartbeat, ttl)
            held = True
            metrics.slots_in_use.add(1)
            renewer = asyncio.create_task(self._renew(req, ttl), name=f"renew {req.lease_id}")
            # A cooldown set while we waited in the queue: honour it holding the slot.
            await self._cool_down(key, waits, heartbeat)
            await self._budget(credential, waits, heartbeat)
            yield
        finally:
            if renewer is not None:
                renewer.cancel()
                with suppress(asyncio.CancelledError):
                    await renewer
            if held:
                metrics.slots_in_use.add(-1)
            try:  # shielded inside the store: the delete commits even if we are cancelled
                await self.store.release_slot(req.lease_id, req.holder)
            except AsmError:  # the store is out: the lease expires on its own
                log.warning("could not release slot %s; it expires in %.0fs", req.lease_id, ttl)

    async def _acquire(
        self, req: SlotRequest, waits: _Waits, heartbeat: Callable[..., None], ttl: float
    ) -> None:
        metrics = instruments()
        queued = False
        # A waiter's row is renewed (and its position refreshed, expired leases reclaimed)
        # by a locked write this often; in between it only reads its own row, because a
        # release grants the freed slot to the next waiter itself. Polling with writes made
        # a fleet of waiters queue on the store's write lock ahead of the holders' events.
        renew_every = max(0.5, min(ttl / 3.0, 10.0))
        try:
            async with _heartbeating(heartbeat, "queued"):
                while True:
                    now = _epoch()
                    state = await self.store.acquire_slot(req, now=now, expires_at=now + ttl)
                    if state.held:
                        return
                    if not queued:
                        queued = True
                        metrics.queued_runs.add(1)
                    await waits.note(
                        "slot",
                        {"position": state.position, "scopes": state.blocked},
                        state.position,
                    )
                    written = time.monotonic()
                    while time.monotonic() - written < renew_every:
                        await asyncio.sleep(self.limits.poll_seconds)
                        mine = await self.store.slot_state(req.lease_id, req.holder)
                        if mine == "held":
                            return
                        if mine is None:  # reclaimed while we stalled: ask again now
                            break
        finally:
            if queued:
                metrics.queued_runs.add(-1)
                metrics.slot_wait.record(waits.waited("slot"), {"reason": "slot"})

    async def _renew(self, req: SlotRequest, ttl: float) -> None:
        period = max(0.5, min(ttl / 3.0, 10.0))
        while True:
            await asyncio.sleep(period)
            try:
                mine = await self.store.renew_slot(
                    req.lease_id, req.holder, expires_at=_epoch() + ttl
                )
            except AsmError as err:  # retried next period; the lease outlives a short outage
                log.warning("renewing slot %s failed: %s", req.lease_id, err.message)
                continue
            if not mine:
                # Reclaimed (this worker stalled past its expiry): the call goes on; the
                # limit is briefly exceeded by one rather than the call being abandoned.
                log.warning("slot %s was reclaimed while held", req.lease_id)
                return

    async def _cool_down(self, key: str, waits: _Waits, heartbeat: Callable[..., None]) -> None:
        until = await self.store.cooldown([key])
        if until <= _epoch():
            return
        async with _heartbeating(heartbeat, "cooling down"):
            while (left := until - _epoch()) > 0:
                await waits.note("cooldown", {"until": until, "key": key}, None)
                await asyncio.sleep(min(left, 1.0))
                until = await self.store.cooldown([key])
        instruments().slot_wait.record(waits.waited("cooldown"), {"reason": "cooldown"})

    async def _budget(self, credential: str, waits: _Waits, heartbeat: Callable[..., None]) -> None:
        rpm = self.limits.rpm_per_credential
        if not rpm:
            return
        waited = False
        async with _heartbeating(heartbeat, "rate budget"):
            while (wait := await self.store.take_rate_token(credential, rpm, now=_epoch())) > 0:
                waited = True
                await waits.note("rpm", {"rpm": rpm, "wait_seconds": round(wait, 3)}, None)
                await asyncio.sleep(min(wait, 1.0))
        if waited:
            instruments().slot_wait.record(waits.waited("rpm"), {"reason": "rpm"})

    async def note_failure(self, spec: RunSpec, model: str, err: AsmError) -> float | None:
        """After a failed attempt: a 429/529 sets the shared cooldown. Returns the seconds
        the next attempt should wait (the cooldown that stands), or None."""
        pe = err.provider_error
        saturated = err.code in _SATURATED or (pe is not None and pe.status_code in (429, 529))
        if not saturated:
            return None
        seconds = finite_delay(
            pe.retry_after if pe is not None else None, self.limits.default_cooldown_seconds
        )
        if pe is not None and pe.retry_after is None:
            seconds = _reset_from_headers(pe.headers) or seconds
        key = cooldown_key(self.credential(spec.provider), model)
        now = _epoch()
        try:
            until = await self.store.set_cooldown(key, now + seconds, err.code)
        except AsmError as store_err:  # the retry still waits retry-after; just not shared
            log.warning("could not share cooldown %s: %s", key, store_err.message)
            return seconds
        metrics = instruments()
        metrics.cooldowns.add(1, {"provider": spec.provider})
        metrics.cooldown_wait.record(seconds, {"provider": spec.provider})
        return max(until - now, 0.0)

    # --- sessions --------------------------------------------------------------------------

    async def admit_session(self, session_id: str, agent_id: str, tenant: str) -> None:
        """Hold the session's slot or raise ``max_sessions_exceeded`` (no limit: nothing)."""
        scopes = session_scopes(self.limits, agent_id=agent_id, tenant=tenant)
        if not scopes:
            return
        req = SlotRequest(
            lease_id=session_lease_id(session_id),
            kind="session",
            holder=session_id[:255],
            scopes=scopes,
            tenant=tenant,
            session_id=session_id,
        )
        await self.store.admit_session(req, now=_epoch())


@asynccontextmanager
async def _heartbeating(heartbeat: Callable[..., None], what: str) -> AsyncIterator[None]:
    """Heartbeat every second while waiting, whatever the wait is blocked on (a busy store
    write must not outlast the heartbeat timeout: Temporal would retry the attempt while
    this one still waits, and both would call the provider)."""

    async def beat() -> None:
        while True:
            heartbeat(what)
            await asyncio.sleep(1.0)

    task = asyncio.create_task(beat(), name=f"heartbeat {what}")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def _reset_from_headers(headers: dict[str, str]) -> float | None:
    """Seconds until an exhausted ``anthropic-ratelimit-*`` budget resets, if one says so."""
    best: float | None = None
    for name, value in headers.items():
        if not (name.startswith("anthropic-ratelimit-") and name.endswith("-remaining")):
            continue
        if value.strip() != "0":
            continue
        reset = headers.get(name.removesuffix("-remaining") + "-reset")
        if reset is None:
            continue
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        seconds = min(max(when - _epoch(), 0.0), 3600.0)
        best = seconds if best is None else max(best, seconds)
    return best


class _Waits:
    """The ``run_queued`` events of one attempt: the first of each wait, then at most one
    per :data:`QUEUED_EVENT_INTERVAL_S` when the position moves."""

    def __init__(
        self, store: EventStore, spec: RunSpec, attempt: int, model: str, step: int = 1
    ) -> None:
        self.store = store
        #: The agent loop's model call (1: the first; later ones wait mid-run, running).
        self.step = step
        self.spec = spec
        self.attempt = attempt
        self.model = model
        self.count = 0
        self.started: dict[str, float] = {}
        self.last: tuple[str, int | None, float] | None = None

    def waited(self, reason: str) -> float:
        return time.monotonic() - self.started.get(reason, time.monotonic())

    async def note(self, reason: str, data: dict[str, Any], position: int | None) -> None:
        now = time.monotonic()
        self.started.setdefault(reason, now)
        if self.last is not None:
            last_reason, last_position, at = self.last
            if last_reason == reason and (
                last_position == position or now - at < QUEUED_EVENT_INTERVAL_S
            ):
                return
        self.last = (reason, position, now)
        self.count += 1
        spec = self.spec
        record = LifecycleRecord(
            event_id=f"{spec.run_id}/s{self.step}/a{self.attempt}/queued/{self.count}",
            session_id=spec.session_id,
            run_id=spec.run_id,
            type=EventType.RUN_QUEUED.value,
            data={
                "reason": reason,
                "attempt": self.attempt,
                "step": self.step,
                "model": self.model,
                **data,
            },
            provider=spec.provider,
            # Before run_started the run is pending; a later model call of a running run waits
            # as a running run (nothing records run_started again).
            run_status=RunStatus.PENDING if self.step == 1 else None,
            run_row=RunPatch(
                session_id=spec.session_id, turn=spec.turn, provider=spec.provider, model=self.model
            )
            if self.step == 1
            else None,
        )
        try:
            await self.store.record(record)
        except AsmError as err:  # the wait goes on; the event is context, not the slot
            log.warning("run_queued of %s not recorded: %s", spec.run_id, err.message)
