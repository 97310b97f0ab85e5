"""The store's connections: engines, the write path with its retries, the read path, closing.

Every write runs in one transaction through :meth:`Database._run_write` (retrying lock waits
and lost races, shielded from the caller's cancellation); every read through
:meth:`Database._run_read` (a dropped connection is retried once). Both raise only
:class:`core.errors.AsmError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

import asyncpg  # no stubs published: ignore_missing_imports in pyproject.toml
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_session_manager.core.errors import AsmError, StateError
from agent_session_manager.core.events import Event
from agent_session_manager.store._append import owners, raise_foreign
from agent_session_manager.store._engine import (
    Backend,
    asyncpg_connect_kwargs,
    backend_of,
    make_engines,
)
from agent_session_manager.store._errors import (
    DB_ERRORS,
    is_conflict,
    is_sqlite_locked,
    redact,
    translate,
)
from agent_session_manager.store._hub import Hub, ListenHub, PollingHub
from agent_session_manager.store._migrate import check_schema as _check_schema

T = TypeVar("T")

#: How long a SQLite write keeps retrying while another process holds the write lock (on top
#: of each attempt's busy_timeout).
SQLITE_LOCK_RETRY_S = 30.0
#: Re-runs of a write that lost a race on an event id or hit a PostgreSQL deadlock /
#: serialization failure. Each re-run sees the winner's commit, so one is normally enough.
WRITE_CONFLICT_RETRIES = 5


class Database:
    """The engines of one database URL, its live-tail hub, and the transaction runners."""

    #: See :data:`SQLITE_LOCK_RETRY_S` (an attribute so tests can shorten it).
    sqlite_lock_retry_s: float = SQLITE_LOCK_RETRY_S

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend: Backend = backend_of(url)
        self._writer, self._reader = make_engines(url)
        self._closed = False
        self._writes: set[asyncio.Task[Any]] = set()
        # In-process SQLite writers queue here rather than in SQLite's sleeping busy handler.
        self._write_lock: asyncio.Lock | None = None
        self._hub: Hub
        if self.backend == "sqlite":
            self._write_lock = asyncio.Lock()
            self._hub = PollingHub(self._reader)
            self._autocommit: AsyncEngine = self._writer
        else:
            # Reads and single-statement appends need no transaction: AUTOCOMMIT saves the
            # BEGIN and COMMIT round trips (an append is then one round trip).
            self._autocommit = self._writer.execution_options(isolation_level="AUTOCOMMIT")
            self._reader = self._autocommit
            connect_kwargs = asyncpg_connect_kwargs(self._writer)
            self._hub = ListenHub(lambda: asyncpg.connect(**connect_kwargs))

    @property
    def display_url(self) -> str:
        """The URL with its password redacted: safe for logs and messages."""
        return redact(self.url)

    @property
    def engine(self) -> AsyncEngine:
        """The writer engine (benchmarks compare against raw inserts through it)."""
        return self._writer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    async def close(self) -> None:
        """Stop followers (they raise ``stream_closed``) and release every connection."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*self._writes, return_exceptions=True)  # let them commit
        await self._hub.close()
        await self._writer.dispose()
        if self._reader is not self._writer and self.backend == "sqlite":
            await self._reader.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _check_connection(self, check_schema: bool) -> None:
        try:
            async with self._reader.connect() as conn:
                if check_schema:
                    await _check_schema(conn, self.url)
                else:
                    await conn.execute(sa.text("SELECT 1"))
        except AsmError:
            raise
        except DB_ERRORS as exc:
            raise translate(exc, "connect", self.url) from exc

    def _ensure_open(self) -> None:
        if self._closed:
            raise StateError("stream_closed", f"the event store {self.display_url} is closed")

    async def _run_write(
        self,
        fn: Callable[[AsyncConnection], Awaitable[T]],
        *,
        ids: Mapping[str, str] | None = None,
        autocommit: bool = False,
    ) -> T:
        """Run ``fn`` in one write transaction, retrying lock waits and lost id races.

        The transaction is shielded from the caller's cancellation: a cancelled activity
        would otherwise abandon it half-way, and on SQLite the abandoned transaction keeps
        the database's write lock until its connection is reclaimed, stalling every other
        writer (seen: a cancelled run's lifecycle write waiting 8 s). The caller still gets
        its ``CancelledError`` at once; the write commits (or fails) on its own.
        """
        self._ensure_open()
        task = asyncio.ensure_future(self._write(fn, ids=ids, autocommit=autocommit))
        self._writes.add(task)  # referenced until done, and awaited by close()
        task.add_done_callback(self._write_done)
        return await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that was cancelled no longer wants it

    async def _write(
        self,
        fn: Callable[[AsyncConnection], Awaitable[T]],
        *,
        ids: Mapping[str, str] | None,
        autocommit: bool,
    ) -> T:
        loop = asyncio.get_running_loop()
        lock_deadline: float | None = None
        conflicts = 0
        while True:
            try:
                if self._write_lock is not None:
                    async with self._write_lock, self._writer.begin() as conn:
                        return await fn(conn)
                if autocommit:
                    async with self._autocommit.connect() as conn:
                        return await fn(conn)
                async with self._writer.begin() as conn:
                    return await fn(conn)
            except AsmError:
                raise
            except DB_ERRORS as exc:
                if is_sqlite_locked(exc):
                    lock_deadline = lock_deadline or loop.time() + self.sqlite_lock_retry_s
                    if loop.time() < lock_deadline:
                        await asyncio.sleep(0.01)
                        continue
                elif is_conflict(exc) and conflicts < WRITE_CONFLICT_RETRIES:
                    conflicts += 1
                    if "uq_asm_events_id" in str(exc) and ids:
                        await self._raise_if_foreign(ids)
                    continue
                raise translate(exc, "write", self.url) from exc

    async def _run_read(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``fn`` on a reader connection; a connection the server dropped is retried once."""
        self._ensure_open()
        for attempt in (1, 2):
            try:
                async with self._reader.connect() as conn:
                    return await fn(conn)
            except AsmError:
                raise
            except DB_ERRORS as exc:
                # A pooled connection killed by a server restart: the pool was invalidated by
                # this failure, so one retry gets a fresh connection. Reads are idempotent.
                if (
                    attempt == 1
                    and isinstance(exc, sa_exc.DBAPIError)
                    and (exc.connection_invalidated)
                ):
                    continue
                raise translate(exc, "read", self.url) from exc
        raise AssertionError("unreachable")

    async def _raise_if_foreign(self, ids: Mapping[str, str]) -> None:
        """``session_mismatch`` if one of the ids exists in another session than intended."""

        async def q(conn: AsyncConnection) -> dict[str, str]:
            return await owners(conn, list(ids))

        for event_id, session_id in (await self._run_read(q)).items():
            raise_foreign({event_id: session_id}, ids[event_id])

    def _published(self, written: Sequence[Event]) -> None:
        # PostgreSQL followers hear the NOTIFY; SQLite followers of this store are woken here
        # (followers in other processes see it on their next poll).
        if self.backend == "sqlite":
            for sid in {e.session_id for e in written}:
                self._hub.publish(sid)
