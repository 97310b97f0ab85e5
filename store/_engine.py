"""Engines per backend: URL resolution, pool sizing, SQLite pragmas and transaction mode.

SQLite gets two engines on the same file:

* a **writer** with one connection whose transactions start ``BEGIN IMMEDIATE``: the write
  lock is taken up front, so a transaction never upgrades a read lock mid-way (the classic
  ``database is locked`` deadlock), and in-process writers queue on an ``asyncio.Lock`` instead
  of spinning in SQLite's busy handler (whose sleeps of up to 100 ms would wreck latency);
* a **reader** pool in autocommit mode: every SELECT is its own WAL snapshot and never blocks
  the writer.

PostgreSQL gets one pooled asyncpg engine; pre-ping is off (it would add a round trip to every
checkout): a dropped connection fails one operation with the retryable
``storage_connection_failed`` and invalidates the pool, so the retry reconnects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_

from agent_session_manager.core.errors import ValidationError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.asm/asm.db"
ENV_VAR = "ASM_DATABASE_URL"

Backend = Literal["sqlite", "postgresql"]

#: SQLite waits this long for another process's write lock before SQLITE_BUSY (ms).
SQLITE_BUSY_TIMEOUT_MS = 5000
#: ``PRAGMA synchronous``: FULL fsyncs the WAL on every commit, so a committed event survives a
#: power loss too (NORMAL only survives process crashes). The audit trail wants FULL.
SQLITE_SYNCHRONOUS = "FULL"
#: asyncpg's own connect timeout: an unreachable host fails fast instead of hanging a worker.
PG_CONNECT_TIMEOUT_S = 10.0
APPLICATION_NAME = "asm-store"


def dialect_insert(backend: Backend, table: sa.Table) -> Any:
    """The backend's ``INSERT`` construct (both have ``ON CONFLICT``)."""
    return (pg_insert if backend == "postgresql" else sqlite_insert)(table)


def resolve_url(url: str | None) -> str:
    """``url``, else ``$ASM_DATABASE_URL``, else :data:`DEFAULT_DATABASE_URL`."""
    resolved = url or os.environ.get(ENV_VAR) or DEFAULT_DATABASE_URL
    check_supported(resolved)  # fail early, before any engine exists
    return resolved


def backend_of(url: str) -> Backend:
    """Which backend a URL names; only the async drivers are supported."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ValidationError(
            "invalid_format", f"not a database URL: {url!r}", details={"url": url}
        ) from None
    name = parsed.drivername
    if name in ("sqlite+aiosqlite", "sqlite"):
        return "sqlite"
    if name in ("postgresql+asyncpg", "postgresql", "postgres"):
        return "postgresql"
    raise ValidationError(
        "invalid_format",
        f"unsupported database URL scheme {name!r}: use sqlite+aiosqlite:///path or "
        "postgresql+asyncpg://user:pass@host:port/db",
        details={"url": parsed.render_as_string(hide_password=True)},
    )


def check_supported(url: str) -> None:
    """Reject URLs the store cannot serve, with the reason."""
    if backend_of(url) == "sqlite" and sqlite_is_memory(make_url(url)):
        raise ValidationError(
            "invalid_format",
            "an in-memory SQLite database cannot be migrated and then opened (each connection "
            "would see its own empty database): use a file, e.g. sqlite+aiosqlite:///tmp/asm.db",
            details={"url": url},
        )


def normalize(url: str) -> URL:
    """The URL with the async driver filled in (``postgresql://`` → ``postgresql+asyncpg://``)."""
    parsed = make_url(url)
    if backend_of(url) == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed.set(drivername="postgresql+asyncpg")


def sqlite_is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or bool(url.query.get("mode") == "memory")


def ensure_sqlite_dir(url: URL) -> None:
    """Create the database file's directory (``.asm/`` for the default URL)."""
    if not sqlite_is_memory(url) and url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def json_serializer(value: Any) -> str:
    """JSON for the JSON columns: pydantic's serializer (datetimes, models, enums …)."""
    return pydantic_core.to_json(value).decode()


def scrub_nul(value: Any) -> Any:
    """``value`` with every NUL character in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {scrub_nul(k): scrub_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_nul(v) for v in value]
    return value


def pg_json_serializer(value: Any) -> str:
    """JSON for JSONB columns, which cannot hold NUL (``\\u0000``): it becomes U+FFFD.

    Tool output may contain NUL bytes; refusing the write would fail the run over one
    unprintable character. The check is a substring test, so clean data pays nothing.
    """
    text = pydantic_core.to_json(value).decode()
    if "\\u0000" in text:
        text = pydantic_core.to_json(scrub_nul(pydantic_core.to_jsonable_python(value))).decode()
    return text


def _sqlite_engine(url: URL, *, writer: bool, pool: Mapping[str, Any]) -> AsyncEngine:
    engine = create_async_engine(url, json_serializer=json_serializer, **pool)
    _rollback_only_if_open(engine.sync_engine.dialect)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Driver autocommit: the driver's implicit BEGIN (deferred, DML-only) is replaced by
        # the explicit one below, so DDL is transactional too and the lock mode is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if writer:
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(f"PRAGMA synchronous = {SQLITE_SYNCHRONOUS}")
        cur.close()

    if writer:
        _begin_immediate(engine.sync_engine.dialect)
    return engine


def _begin_immediate(dialect: sa.Dialect) -> None:
    """Make ``dialect`` (the writer's own instance) start each transaction ``BEGIN IMMEDIATE``.

    Sent through the driver in one trip to the connection's thread: as an SQLAlchemy
    statement it took three (cursor, execute, close), on every write. An error (``database
    is locked``) is wrapped by SQLAlchemy like any other, as ``do_begin`` runs inside its
    error handling.
    """

    def do_begin(dbapi_connection: Any) -> None:
        await_(dbapi_connection.driver_connection.execute_fetchall("BEGIN IMMEDIATE"))

    dialect.do_begin = do_begin  # type: ignore[method-assign]


def _rollback_only_if_open(dialect: sa.Dialect) -> None:
    """Make ``dialect`` (this engine's own instance) skip a ROLLBACK with nothing to undo.

    SQLAlchemy rolls back when a connection is closed after a read (its implicit
    transaction) and again when the pool takes a connection back after a commit. On SQLite
    the reader runs in driver autocommit and a write transaction has ended in its COMMIT, so
    both are no-ops, yet each was one more trip to the connection's thread: paid by every
    read before it returns, and by every write before it is published to followers and before
    the single writer connection is free for the next write. A transaction still open (a
    failed commit, say) is rolled back as before.
    """
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        # sqlite3_get_autocommit: a flag read, no trip to the connection's thread.
        driver = dbapi_connection.driver_connection
        if driver is None or driver.in_transaction:
            rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def make_engines(url: str) -> tuple[AsyncEngine, AsyncEngine]:
    """``(writer, reader)`` for ``url``; the same engine twice on PostgreSQL."""
    parsed = normalize(url)
    if backend_of(url) == "sqlite":
        ensure_sqlite_dir(parsed)
        writer = _sqlite_engine(
            parsed, writer=True, pool={"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
        )
        reader = _sqlite_engine(
            parsed, writer=False, pool={"pool_size": 4, "max_overflow": 12, "pool_timeout": 60}
        )
        return writer, reader
    engine = create_async_engine(
        parsed,
        json_serializer=pg_json_serializer,
        pool_size=10,
        max_overflow=20,
        pool_timeout=30,
        # Recycle before typical server/proxy idle cut-offs (pgbouncer, cloud LBs: 30-60 min).
        pool_recycle=1800,
        connect_args={
            "timeout": PG_CONNECT_TIMEOUT_S,
            "server_settings": {"application_name": APPLICATION_NAME},
        },
    )
    return engine, engine


def make_migration_engine(url: str) -> AsyncEngine:
    """A pool-less engine for migrations and one-off checks (transactional DDL on SQLite)."""
    parsed = normalize(url)
    if backend_of(url) == "sqlite":
        ensure_sqlite_dir(parsed)
        return _sqlite_engine(parsed, writer=True, pool={"poolclass": NullPool})
    return create_async_engine(
        parsed,
        poolclass=NullPool,
        connect_args={
            "timeout": PG_CONNECT_TIMEOUT_S,
            "server_settings": {"application_name": APPLICATION_NAME},
        },
    )


def asyncpg_connect_kwargs(engine: AsyncEngine) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect`` equivalent to the engine's connections."""
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs = dict(kwargs)
    kwargs.setdefault("timeout", PG_CONNECT_TIMEOUT_S)
    kwargs.setdefault("server_settings", {"application_name": f"{APPLICATION_NAME}-listen"})
    return kwargs
