"""The event store: append-only events with gap-free per-session ``seq``, read models, follow.

How appends number events is in ``store._append``; how lifecycle records change the session
and run read models in ``store._read_models``; connections, retries and closing in
``store._database``; live wake-ups in ``store._hub``.

Idempotency
    An event whose ``id`` exists is skipped (within a batch, the first occurrence wins), so a
    retried activity or a replayed local activity writes nothing twice. ``record``,
    ``save_messages`` and ``save_reply`` apply their read-model changes as *sets*, so
    re-applying them is a no-op; a ledger row is written once per ``(run, step, attempt)``.

Text that PostgreSQL cannot store (NUL characters) becomes U+FFFD there; SQLite keeps it.

Cursors
    ``after_seq`` is "the last seq I have": valid values are ``0 .. last_seq(session)``.
    Negative values are always ``invalid_cursor``; values beyond the end are ``invalid_cursor``
    unless ``strict=False`` (a cursor beyond the end was never handed out by this store, so it
    means a wrong session or a reset database, and waiting on it would hang silently).
    An unknown session is not an error unless ``must_exist=True`` (``session_not_found``): a
    follower may legitimately start before the session's first event is written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.budget import Spend
from agent_session_manager.core.content import TEXT_MEDIA_TYPE, ContentRef, content_bytes, ref_of
from agent_session_manager.core.contract import ContextPolicy, LifecycleRecord, Message
from agent_session_manager.core.errors import AsmError, ResourceError, StateError
from agent_session_manager.core.events import Event, EventDraft
from agent_session_manager.core.ledger import LedgerEntry, UsageGroup, UsageTotal
from agent_session_manager.store import (
    _content,
    _conversation,
    _ledger,
    _limits,
    _ownership,
    _read_models,
    _reads,
    _summaries,
    _tenancy,
)
from agent_session_manager.store._append import append_batch, append_group, dedupe
from agent_session_manager.store._context_cache import ContextCache
from agent_session_manager.store._conversation import SavedRun
from agent_session_manager.store._database import Database
from agent_session_manager.store._engine import resolve_url
from agent_session_manager.store._errors import invalid_input, translate
from agent_session_manager.store._hub import Subscription as Watch
from agent_session_manager.store._limits import LeaseInfo, RateInfo, SlotRequest, SlotState
from agent_session_manager.store._reads import MAX_PAGE, invalid_cursor, type_values
from agent_session_manager.store._rows import RunRow, SessionRow
from agent_session_manager.store._summaries import Summary
from agent_session_manager.store._tenancy import ApiKey


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SavedReply:
    """What :meth:`EventStore.save_reply` wrote."""

    #: The events newly written, the ending's last (none on a repeated save).
    written: list[Event]
    #: The run's total over all its ledger rows, the saved attempt's included.
    total: UsageTotal
    #: The ending record built from ``total`` and applied (None: the save had no ending).
    record: LifecycleRecord | None


class EventStore(Database):
    """Events, sessions, runs and conversation messages in SQL (SQLite or PostgreSQL).

    Open with :func:`open_store`; one store per process is the intent (it owns the pools and,
    on PostgreSQL, one ``LISTEN`` connection shared by every follower). Every public method
    raises only :class:`core.errors.AsmError` for storage failures and bad input.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        # The conversation windows this process read last (store._context_cache).
        self._contexts = ContextCache()

    # --- append ------------------------------------------------------------------------------

    async def append(self, drafts: Sequence[EventDraft]) -> list[Event]:
        """Write ``drafts`` in one transaction; return the events newly written, with ``seq``.

        Events whose id already exists are skipped (so a retried write changes nothing); the
        first of several drafts sharing an id wins. No session row is needed. Drafts of several
        sessions may be mixed; each session's events get consecutive seqs in draft order.
        Raises ``session_mismatch`` when an id exists in another session.
        """
        batch = dedupe(drafts)
        if not batch:
            return []
        now = _now()
        sids = {d.session_id for d in batch}
        ids = {d.id: d.session_id for d in batch}
        if self.backend == "postgresql" and len(sids) == 1:
            (sid,) = sids

            async def single(conn: AsyncConnection) -> list[Event]:
                return await append_group(conn, self.backend, sid, batch, now)

            written = await self._run_write(single, ids=ids, autocommit=True)
        else:

            async def tx(conn: AsyncConnection) -> list[Event]:
                return await append_batch(conn, self.backend, batch, now)

            written = await self._run_write(tx, ids=ids)
        self._published(written)
        return written

    # --- reads -------------------------------------------------------------------------------

    async def events(
        self,
        session_id: str,
        after_seq: int = 0,
        before_seq: int | None = None,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        *,
        strict: bool = True,
        must_exist: bool = False,
    ) -> list[Event]:
        """Events of a session with ``after_seq < seq < before_seq``, in seq order.

        Filters: ``run_id``, ``types`` (event type names). At most ``limit`` events (clamped
        to :data:`MAX_PAGE`); page by passing the last seq as ``after_seq``. See the module
        docstring for ``strict`` (cursor beyond the end) and ``must_exist``.
        """
        if after_seq < 0:
            raise invalid_cursor(session_id, after_seq, None)
        if before_seq is not None and before_seq < 1:
            raise StateError(
                "invalid_cursor",
                f"before_seq must be >= 1, got {before_seq}",
                details={"session_id": session_id, "before_seq": before_seq},
            )
        if limit < 1:
            raise invalid_input(f"limit must be >= 1, got {limit}")
        stmt = _reads.select_events(
            session_id, after_seq, before_seq, run_id, type_values(types), min(limit, MAX_PAGE)
        )

        async def q(conn: AsyncConnection) -> list[Event]:
            events = await _reads.read_events(conn, stmt)
            if not events and ((strict and after_seq > 0) or must_exist):
                await _reads.check_cursor(
                    conn, session_id, after_seq, strict=strict, must_exist=must_exist
                )
            return events

        return await self._run_read(q)

    async def last_seq(self, session_id: str) -> int:
        """The session's highest seq; 0 when it has no events."""
        return await self._run_read(lambda conn: _reads.last_seq(conn, session_id))

    async def _read_page(
        self,
        session_id: str,
        after_seq: int,
        run_id: str | None,
        types: list[str] | None,
        limit: int,
    ) -> tuple[list[Event], int]:
        return await self._run_read(
            lambda conn: _reads.read_page(conn, session_id, after_seq, None, run_id, types, limit)
        )

    async def wait_events(
        self,
        session_id: str,
        after_seq: int,
        timeout: float,  # noqa: ASYNC109 - the long-poll budget is the API, not a wrapper timeout
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        strict: bool = True,
        must_exist: bool = False,
    ) -> list[Event]:
        """Long poll: events after ``after_seq`` as soon as there are any, ``[]`` after ``timeout``.

        Returns at once when matching events exist. Same filters and cursor rules as
        :meth:`events`.
        """
        if timeout < 0:
            raise invalid_input(f"timeout must be >= 0, got {timeout}")
        first = await self.events(
            session_id,
            after_seq,
            None,
            run_id,
            types,
            limit,
            strict=strict,
            must_exist=must_exist,
        )
        if first or timeout == 0:
            return first
        wanted = type_values(types)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sub = await self._hub.subscribe(session_id)
        try:
            cursor = after_seq
            while True:
                sub.clear()
                events, cursor = await self._read_page(
                    session_id, cursor, run_id, wanted, min(limit, MAX_PAGE)
                )
                if events:
                    return events
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                if sub.closed:
                    self._ensure_open()
                await sub.wait(min(remaining, self._hub.wait_interval))
        finally:
            self._hub.unsubscribe(sub)

    def follow(
        self,
        session_id: str,
        after_seq: int = 0,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        strict: bool = True,
        must_exist: bool = False,
        page_size: int = 1000,
        reconnect_timeout: float = 60.0,
    ) -> AsyncGenerator[Event, None]:
        """Every event after ``after_seq``, then new ones live, forever, in seq order.

        Stops when the consumer stops iterating (use ``contextlib.aclosing`` to release the
        subscription at once) or is cancelled; raises ``stream_closed`` if the store closes.
        Resume from any seq by passing it as ``after_seq``: every event is delivered exactly
        once. Wake-ups: PostgreSQL ``LISTEN/NOTIFY``, with a catch-up read whenever the
        listener (re)connects; SQLite polls every 10-50 ms (instant for writes made through this
        same store). Connection failures are retried for ``reconnect_timeout`` seconds before
        ``storage_connection_failed`` is raised.

        A negative ``after_seq`` raises here; cursor/session checks happen on the first
        iteration (see the module docstring for ``strict`` and ``must_exist``).
        """
        if after_seq < 0:
            raise invalid_cursor(session_id, after_seq, None)
        if page_size < 1:
            raise invalid_input(f"page_size must be >= 1, got {page_size}")
        return self._follow(
            session_id,
            after_seq,
            run_id,
            type_values(types),
            strict,
            must_exist,
            min(page_size, MAX_PAGE),
            reconnect_timeout,
        )

    async def _follow(
        self,
        session_id: str,
        after_seq: int,
        run_id: str | None,
        types: list[str] | None,
        strict: bool,
        must_exist: bool,
        page_size: int,
        reconnect_timeout: float,
    ) -> AsyncGenerator[Event, None]:
        self._ensure_open()
        loop = asyncio.get_running_loop()
        sub = await self._hub.subscribe(session_id)
        try:
            cursor = after_seq
            checked = not (strict and after_seq > 0) and not must_exist
            failing_since: float | None = None
            backoff = 0.05
            while True:
                if sub.closed:
                    self._ensure_open()
                sub.clear()
                try:
                    events, scanned = await self._read_page(
                        session_id, cursor, run_id, types, page_size
                    )
                    if not checked:
                        if not events:
                            await self._run_read(
                                lambda conn: _reads.check_cursor(
                                    conn,
                                    session_id,
                                    after_seq,
                                    strict=strict,
                                    must_exist=must_exist,
                                )
                            )
                        checked = True
                except AsmError as exc:
                    if exc.code != "storage_connection_failed" or self._closed:
                        raise
                    failing_since = failing_since or loop.time()
                    if loop.time() - failing_since > reconnect_timeout:
                        raise
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                failing_since, backoff = None, 0.05
                for ev in events:
                    yield ev
                cursor = scanned
                if len(events) >= page_size:
                    continue  # catching up: next page at once
                await sub.wait(self._hub.wait_interval)
        finally:
            self._hub.unsubscribe(sub)

    # --- shared tails (one reader for many followers, e.g. a gateway process) ----------------

    async def watch(self, session_id: str, on_wake: Callable[[str], None]) -> Watch:
        """Call ``on_wake(session_id)`` whenever the session may have new events.

        The same wake-ups :meth:`follow` uses (LISTEN/NOTIFY, SQLite polling), for a reader
        that serves many followers itself (:meth:`newer_events`). Wake-ups can be spurious or
        merged, and a reader should also re-read every :attr:`watch_interval` seconds (the
        listener may be down). ``watch.closed`` turns true when the store closes. Release with
        :meth:`unwatch`.
        """
        self._ensure_open()
        return await self._hub.subscribe(session_id, on_wake)

    def unwatch(self, watch: Watch) -> None:
        self._hub.unsubscribe(watch)

    @property
    def watch_interval(self) -> float:
        """Seconds a watcher may go without a wake-up before it should re-read anyway."""
        return self._hub.wait_interval

    async def newer_events(
        self, heads: Mapping[str, int], page: int = 500
    ) -> dict[str, list[Event]]:
        """Up to ``page`` events after each session's head, in seq order, in one read.

        Sessions with nothing new are absent from the answer; a session with exactly ``page``
        events may have more. Heads are trusted (no cursor check): pass seqs you have read.
        """
        if page < 1:
            raise invalid_input(f"page must be >= 1, got {page}")
        if not heads:
            return {}
        stmt, params = _reads.select_newer(heads, min(page, MAX_PAGE))

        async def q(conn: AsyncConnection) -> dict[str, list[Event]]:
            found: dict[str, list[Event]] = {}
            for event in await _reads.read_events(conn, stmt, params):
                found.setdefault(event.session_id, []).append(event)
            return found

        return await self._run_read(q)

    # --- read models -------------------------------------------------------------------------

    async def record(self, rec: LifecycleRecord) -> Event | None:
        """Append a lifecycle event and apply its read-model change in one transaction.

        The event (id ``rec.event_id``, attempt 0) is written idempotently; the session and
        run patches are applied as ``store._read_models`` describes. Returns the new event,
        or None if it already existed.
        """
        draft = _read_models.record_draft(rec)
        now = _now()

        async def tx(conn: AsyncConnection) -> list[Event]:
            known = await _read_models.with_attempts(conn, rec)
            event = _read_models.record_draft(known)
            written = await append_group(conn, self.backend, rec.session_id, [event], now)
            await _read_models.apply_record(conn, self.backend, known, now)
            return written

        written = await self._run_write(tx, ids={draft.id: draft.session_id})
        self._published(written)
        return written[0] if written else None

    async def get_session(self, session_id: str) -> SessionRow | None:
        """The session's read model, or None."""
        return await self._run_read(lambda conn: _read_models.get_session(conn, session_id))

    async def list_sessions(
        self,
        *,
        status: str | None = None,
        agent_id: str | None = None,
        limit: int = 100,
    ) -> list[SessionRow]:
        """Sessions, newest first, optionally filtered by status and agent."""
        stmt = _read_models.select_sessions(status, agent_id, limit)
        return await self._run_read(lambda conn: _read_models.list_sessions(conn, stmt))

    async def get_run(self, run_id: str) -> RunRow | None:
        """The run's read model, or None."""
        return await self._run_read(lambda conn: _read_models.get_run(conn, run_id))

    async def runs(self, session_id: str) -> list[RunRow]:
        """The session's runs ordered by turn."""
        return await self._run_read(lambda conn: _read_models.runs(conn, session_id))

    # --- fleet-wide limits (core.limits; store._limits) --------------------------------------

    async def acquire_slot(
        self, req: SlotRequest, *, now: float, expires_at: float | None
    ) -> SlotState:
        """Ask for a slot (again): held, or waiting at a position. Waiters ask again later."""
        return await self._run_write(
            lambda conn: _limits.acquire(conn, self.backend, req, now, expires_at)
        )

    async def renew_slot(self, lease_id: str, holder: str, *, expires_at: float) -> bool:
        """Extend a lease; ``False`` when it is no longer this holder's."""
        return await self._run_write(lambda conn: _limits.renew(conn, lease_id, holder, expires_at))

    async def release_slot(
        self, lease_id: str, holder: str | None = None, *, now: float | None = None
    ) -> None:
        """Free a slot or leave the queue (only ``holder``'s own lease, when given); the
        next waiter is granted the slot in the same commit."""
        at = time.time() if now is None else now
        await self._run_write(
            lambda conn: _limits.release(conn, self.backend, lease_id, holder, at)
        )

    async def slot_state(self, lease_id: str, holder: str) -> str | None:
        """``held``/``waiting`` for the holder's own lease, else None (a read, no lock)."""
        return await self._run_read(lambda conn: _limits.slot_state(conn, lease_id, holder))

    async def admit_session(self, req: SlotRequest, *, now: float) -> None:
        """Hold a session slot, or raise ``max_sessions_exceeded``."""
        await self._run_write(lambda conn: _limits.admit_session(conn, self.backend, req, now))

    async def set_cooldown(self, key: str, until: float, reason: str) -> float:
        """Extend the cooldown of ``key`` (credential/model) to ``until``; what stands."""
        return await self._run_write(
            lambda conn: _limits.set_cooldown(conn, self.backend, key, until, reason)
        )

    async def cooldown(self, keys: list[str]) -> float:
        """The latest cooldown among ``keys``, epoch seconds (0: none)."""
        return await self._run_read(lambda conn: _limits.cooldown(conn, keys))

    async def take_rate_token(self, key: str, rpm: int, *, now: float) -> float:
        """Spend one call of ``key``'s per-minute budget: 0, or seconds to wait first."""
        return await self._run_write(
            lambda conn: _limits.take_token(conn, self.backend, key, rpm, now)
        )

    async def leases(self, *, now: float) -> list[LeaseInfo]:
        """Live slot leases and waiters (``asm limits``)."""
        return await self._run_read(lambda conn: _limits.leases(conn, now))

    async def rate_states(self) -> list[RateInfo]:
        """Cooldowns and budgets per credential/model (``asm limits``)."""
        return await self._run_read(_limits.rate_states)

    # --- ownership ---------------------------------------------------------------------------

    async def claim_session(
        self, session_id: str, owner: str, workflow_id: str = "", tenant: str = ""
    ) -> None:
        """Make ``owner`` (a session workflow's first run id) the owner of ``session_id``, and
        ``tenant`` (if any) the session's tenant, in one transaction.

        Idempotent for the owner; ``session_already_exists`` if another workflow owns it, the
        session is already in the log, or the id is another tenant's. See ``store._ownership``.
        Every session is claimed when it starts, whoever starts it (the HTTP gateway or a
        ``SessionClient``), so this is the one place a session's tenant is recorded: a
        gateway key of that tenant reaches the session however it was started.
        """
        now = _now()

        async def claim(conn: AsyncConnection) -> None:
            await _ownership.claim_session(conn, self.backend, session_id, owner, workflow_id, now)
            if tenant:
                await _tenancy.record_session_tenant(conn, self.backend, session_id, tenant, now)

        await self._run_write(claim)

    async def claim_run(self, run_id: str, session_id: str) -> None:
        """Make ``run_id`` belong to ``session_id``; ``validation_error`` if another session's."""
        now = _now()
        await self._run_write(
            lambda conn: _ownership.claim_run(conn, self.backend, run_id, session_id, now)
        )

    # --- tenancy (the HTTP gateway) ----------------------------------------------------------

    async def create_api_key(self, tenant: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key for ``tenant``: its listing and the key itself, which is stored only as a
        hash and so can be shown this once (see ``store._tenancy``)."""
        now = _now()
        return await self._run_write(lambda conn: _tenancy.create_key(conn, tenant, name, now))

    async def api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (active and revoked), oldest first; only ``tenant``'s when given."""
        return await self._run_read(lambda conn: _tenancy.list_keys(conn, tenant))

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key by its id (idempotent); ``not_found`` if there is no such key."""
        now = _now()
        return await self._run_write(lambda conn: _tenancy.revoke_key(conn, key_id, now))

    async def api_key(self, key: str) -> ApiKey | None:
        """The active key ``key`` is; None when it is unknown, malformed or revoked."""
        return await self._run_read(lambda conn: _tenancy.key_for(conn, key))

    async def record_session_tenant(self, session_id: str, tenant: str) -> None:
        """Make ``session_id`` ``tenant``'s, before the session starts (idempotent for that
        tenant; ``session_already_exists`` for another)."""
        now = _now()
        await self._run_write(
            lambda conn: _tenancy.record_session_tenant(conn, self.backend, session_id, tenant, now)
        )

    async def session_tenant(self, session_id: str) -> str | None:
        """The tenant ``session_id`` belongs to; None for a session no gateway started."""
        return await self._run_read(lambda conn: _tenancy.session_tenant(conn, session_id))

    # --- conversation ------------------------------------------------------------------------

    async def save_messages(
        self,
        session_id: str,
        run_id: str,
        turn: int,
        messages: Sequence[Message],
        events: Sequence[EventDraft] = (),
        record: LifecycleRecord | None = None,
    ) -> list[Event]:
        """Replace the run's conversation messages and append ``events``, atomically.

        ``record`` (e.g. the run's ``run_completed``) is applied in the same transaction, as
        :meth:`record` would, its event after ``events``. Idempotent per run: saving again
        replaces the run's messages. The run row is created (status ``running``) if no
        lifecycle record made it yet. Returns the newly written events. ``run_mismatch`` if
        the run belongs to another session; ``session_mismatch`` if an event does.
        """
        msgs, batch = _saved(session_id, messages, events)
        now = _now()
        written = await self._run_write(
            lambda conn: self._save(conn, session_id, run_id, turn, msgs, batch, record, now),
            ids={d.id: session_id for d in batch},
        )
        self._published(written)
        return written

    async def save_reply(
        self,
        session_id: str,
        run_id: str,
        turn: int,
        messages: Sequence[Message],
        events: Sequence[EventDraft] = (),
        *,
        bill: LedgerEntry,
        alone: bool = True,
        ending: Callable[[UsageTotal], LifecycleRecord] | None = None,
    ) -> SavedReply:
        """:meth:`save_messages` of a model call that completed, with its ledger row: one
        transaction instead of two on every call.

        ``bill`` is written first, as :meth:`bill` would (``alone`` likewise); ``ending``
        (the run's ``run_completed`` on its last call) is then built from the run's total,
        which it reports, and applied like ``save_messages``'s ``record``. Idempotent like
        both: saving again (a commit in doubt) writes no second row nor event, returns the
        same total and replaces the messages with the same ones. ``run_mismatch`` if ``bill``
        is another run's (nothing is written).
        """
        if (bill.run_id, bill.session_id) != (run_id, session_id):
            raise StateError(
                "run_mismatch",
                f"ledger entry of run {bill.run_id!r} (session {bill.session_id!r}) saved with "
                f"run {run_id!r} of session {session_id!r}: bill each attempt with its own run",
                details={"run_id": bill.run_id, "session_id": bill.session_id},
            )
        msgs, batch = _saved(session_id, messages, events)
        now = _now()
        # The ending's event id is known inside the transaction only; a lost id race reads
        # its owner from here (Database._write).
        ids = {d.id: session_id for d in batch}

        async def tx(conn: AsyncConnection) -> SavedReply:
            # The ledger row before the counters: only this run's attempts write its rows,
            # and they take no counter first, so no lock cycle forms.
            total = await _ledger.bill(conn, self.backend, bill, now, alone=alone)
            record = None if ending is None else ending(total)
            if record is not None:
                ids[record.event_id] = session_id
            written = await self._save(conn, session_id, run_id, turn, msgs, batch, record, now)
            return SavedReply(written=written, total=total, record=record)

        saved = await self._run_write(tx, ids=ids)
        self._published(saved.written)
        return saved

    async def _save(
        self,
        conn: AsyncConnection,
        session_id: str,
        run_id: str,
        turn: int,
        msgs: list[Message],
        batch: list[EventDraft],
        record: LifecycleRecord | None,
        now: datetime,
    ) -> list[Event]:
        """The writes of :meth:`save_messages`, in the caller's transaction."""
        if record is not None:
            draft = _read_models.record_draft(record)
            _check_session(draft, session_id)
            batch = dedupe([*batch, draft])
        # Lock order everywhere: counters, then session/run rows (no deadlock cycles).
        written = await append_batch(conn, self.backend, batch, now) if batch else []
        await _conversation.replace_messages(
            conn, self.backend, session_id, run_id, turn, msgs, now
        )
        if record is not None:
            await _read_models.apply_record(conn, self.backend, record, now)
        return written

    async def conversation(
        self, session_id: str, before_turn: int, policy: ContextPolicy | None = None
    ) -> list[Message]:
        """The conversation so far: saved messages of the session's earlier runs.

        A run's messages count iff the run's turn is below ``before_turn``, its messages were
        saved, it was not rolled back (:meth:`mark_rolled_back`), and its status is not
        ``failed``, ``cancelled`` or ``timeout`` (a run still ``running`` whose messages were
        saved counts). Ordered by turn, then run id, then message index.

        With ``policy``, only the newest whole runs within it
        (:func:`core.context.fit_context`), read newest first and no further than the policy
        reaches. The window read last is kept in memory per session
        (``store._context_cache``), so the next read asks SQL only for what changed since:
        its cost depends neither on the session's length nor on the window's size. The
        messages returned are the snapshot's own: treat them as read-only.
        """
        if policy is None:
            return await self._run_read(
                lambda conn: _conversation.conversation(
                    conn, self.backend, session_id, before_turn, None
                )
            )
        runs = await self.conversation_runs(session_id, before_turn, policy)
        return [m for run in runs for m in run.messages]

    async def conversation_runs(
        self, session_id: str, before_turn: int, policy: ContextPolicy
    ) -> list[SavedRun]:
        """:meth:`conversation` with a policy, by run (oldest first, with each run's turn):
        what the ``summarize`` strategy needs to know which turns the window left out."""
        return await self._run_read(
            lambda conn: self._contexts.runs(conn, self.backend, session_id, before_turn, policy)
        )

    async def older_runs(
        self, session_id: str, before_turn: int, limit: int, *, whole: bool = True
    ) -> list[SavedRun]:
        """The newest counting runs before ``before_turn`` (as :meth:`conversation` counts
        them), newest first, within ``limit`` messages; ``whole=False`` keeps the oldest run
        read even if the limit cut it short."""
        return await self._run_read(
            lambda conn: self._older_runs(conn, session_id, before_turn, limit, whole)
        )

    async def _older_runs(
        self, conn: AsyncConnection, session_id: str, before_turn: int, limit: int, whole: bool
    ) -> list[SavedRun]:
        runs, complete = await _conversation.window(
            conn, self.backend, session_id, before_turn, limit
        )
        # The read stops at a row, not a run: the oldest run read may be cut short.
        return runs if complete or not whole else runs[:-1]

    async def summary(self, session_id: str, turn: int) -> Summary | None:
        """The stored summary with the highest ``through_turn`` not above ``turn``."""
        return await self._run_read(lambda conn: _summaries.latest(conn, session_id, turn))

    async def save_summary(self, session_id: str, summary: Summary, run_id: str) -> Summary:
        """Store ``summary`` (written by run ``run_id``) unless one for the same turns exists
        already; returns the stored one."""
        now = _now()
        return await self._run_write(
            lambda conn: _summaries.save(conn, self.backend, session_id, summary, run_id, now)
        )

    async def run_messages(self, run_id: str) -> list[Message]:
        """The messages saved for ``run_id`` so far, in order (empty for an unknown run)."""
        return await self._run_read(lambda conn: _conversation.run_messages(conn, run_id))

    async def mark_rolled_back(self, run_id: str) -> None:
        """Exclude the run's messages from :meth:`conversation` (``run_not_found`` if unknown)."""
        now = _now()
        found = await self._run_write(
            lambda conn: _conversation.mark_rolled_back(conn, self.backend, run_id, now)
        )
        if not found:
            raise ResourceError(
                "run_not_found", f"run {run_id!r} not found", details={"run_id": run_id}
            )

    # --- content by reference ----------------------------------------------------------------

    async def put_content(
        self, content: str | bytes, media_type: str = TEXT_MEDIA_TYPE
    ) -> ContentRef:
        """Store ``content`` (text as UTF-8) and return its reference; idempotent by digest."""
        body = content_bytes(content)
        ref = ref_of(body, media_type)
        now = _now()
        await self._run_write(lambda conn: _content.put(conn, self.backend, ref, body, now))
        return ref

    async def get_content(self, ref: ContentRef) -> bytes:
        """The bytes ``ref`` names, verified against its digest (``not_found`` if absent)."""
        return await self._run_read(lambda conn: _content.get(conn, ref))

    async def get_text(self, ref: ContentRef) -> str:
        """:meth:`get_content`, decoded as the UTF-8 text it was stored from."""
        data = await self.get_content(ref)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise invalid_input(
                f"content {ref.digest} is {ref.media_type!r} bytes, not UTF-8 text: "
                "read it with get_content"
            ) from None

    # --- cost ledger -------------------------------------------------------------------------

    async def bill(self, entry: LedgerEntry, *, alone: bool = True) -> UsageTotal:
        """Write one attempt's ledger row (a second write of the same ``(run, attempt)`` is a
        no-op); a completed attempt marks the run's failed ones ``superseded``. Returns the
        run's total over all its attempts. ``alone=False`` when the run's first call may not
        be its first row (a summary was billed before it)."""
        now = _now()
        return await self._run_write(
            lambda conn: _ledger.bill(conn, self.backend, entry, now, alone=alone)
        )

    async def run_total(self, run_id: str) -> UsageTotal:
        """Every ledger row of ``run_id`` summed (zero attempts when it has none)."""
        _ledger_filters(run_id=run_id)
        return await self._run_read(lambda conn: _ledger.run_total(conn, run_id))

    async def spend(
        self,
        *,
        session_id: str | None = None,
        agent_id: str | None = None,
        tenant: str | None = None,
        day: str | None = None,
    ) -> Spend:
        """Tokens and micro-dollars the matching attempts cost (all of them, when unfiltered)."""
        filters = _ledger_filters(session_id=session_id, agent_id=agent_id, tenant=tenant, day=day)
        return await self._run_read(lambda conn: _ledger.spend(conn, **filters))

    async def last_call(self, session_id: str) -> Spend:
        """The session's most recent attempt's tokens and cost (zero when it has none)."""
        _ledger_filters(session_id=session_id)
        return await self._run_read(lambda conn: _ledger.last_call(conn, session_id))

    async def usage_totals(
        self,
        group: UsageGroup,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        tenant: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
    ) -> list[UsageTotal]:
        """The ledger summed per ``group`` (run, session, agent, tenant, day, model), filtered;
        days are UTC ``YYYY-MM-DD`` (``since``/``until`` inclusive). Most expensive first."""
        if group not in _ledger.GROUPS:
            raise invalid_input(f"group must be one of {', '.join(_ledger.GROUPS)}, got {group!r}")
        if not 1 <= limit <= MAX_PAGE:
            raise invalid_input(f"limit must be in 1..{MAX_PAGE}, got {limit}")
        filters = _ledger_filters(
            run_id=run_id,
            session_id=session_id,
            agent_id=agent_id,
            tenant=tenant,
            since=since,
            until=until,
        )
        return await self._run_read(lambda conn: _ledger.totals(conn, group, limit, **filters))

    async def ledger(
        self,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        limit: int = 1000,
    ) -> list[LedgerEntry]:
        """The ledger rows of a run or a session, oldest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise invalid_input(f"limit must be in 1..{MAX_PAGE}, got {limit}")
        filters = _ledger_filters(run_id=run_id, session_id=session_id)
        return await self._run_read(lambda conn: _ledger.entries(conn, limit, **filters))


def _saved(
    session_id: str, messages: Sequence[Message], events: Sequence[EventDraft]
) -> tuple[list[Message], list[EventDraft]]:
    """The messages and events a save writes, checked before its transaction."""
    msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
    batch = dedupe(events)
    for d in batch:
        _check_session(d, session_id)
    return msgs, batch


def _check_session(draft: EventDraft, session_id: str) -> None:
    """``session_mismatch`` unless ``draft`` is an event of ``session_id``."""
    if draft.session_id != session_id:
        raise StateError(
            "session_mismatch",
            f"event {draft.id!r} belongs to session {draft.session_id!r}, not {session_id!r}",
            details={"event_id": draft.id, "session_id": draft.session_id},
        )


def _ledger_filters(**filters: str | None) -> dict[str, str | None]:
    """``filters`` checked against the ledger's columns: ``invalid_input`` otherwise."""
    for name, value in filters.items():
        if value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > _ledger.MAX_KEY_CHARS:
            raise invalid_input(
                f"{name} must be a non-empty string of at most {_ledger.MAX_KEY_CHARS} "
                f"characters, got {str(value)[:80]!r}"
            )
        if name in ("day", "since", "until") and not _ledger.DAY.fullmatch(value):
            raise invalid_input(f"{name} must be a UTC day as YYYY-MM-DD, got {value[:80]!r}")
    return filters


async def open_store(url: str | None = None, *, check_schema: bool = True) -> EventStore:
    """Open the event store at ``url`` (default ``$ASM_DATABASE_URL``, then ``.asm/asm.db``).

    Connects once to fail fast: ``storage_connection_failed`` names the URL (password
    redacted) and what to check. With ``check_schema`` (the default, and what the worker
    does) an out-of-date schema raises :class:`store.SchemaOutOfDate` saying to run
    ``asm db upgrade``.
    """
    resolved = resolve_url(url)
    try:
        store = EventStore(resolved)
    except OSError as exc:  # e.g. the SQLite file's directory cannot be created
        raise translate(exc, "connect", resolved) from exc
    try:
        await store._check_connection(check_schema)
    except BaseException:
        await store.close()
        raise
    return store
