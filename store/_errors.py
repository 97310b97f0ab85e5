"""Translate database failures into the taxonomy, in one place.

Every exception leaving the store is an :class:`agent_session_manager.core.errors.AsmError`:

* the database cannot be reached, or the connection dropped mid-transaction, or SQLite stayed
  locked past the retry budget → ``storage_connection_failed`` (retryable: Temporal retries the
  activity, and appends are idempotent by event id, so a retry of an in-doubt commit writes
  nothing twice);
* the disk is full (SQLite ``database or disk is full``, PostgreSQL SQLSTATE 53100) →
  ``storage_full`` (retryable: space comes back, and the write is idempotent like the others);
* anything else while writing → ``storage_write_failed``; while reading →
  ``storage_read_failed`` (not retryable: a constraint or SQL error will not heal by itself).

Messages name the URL with its password redacted and say what to check. Bad arguments are
``invalid_input``.
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from typing import Any, Literal

import asyncpg  # no stubs published: ignore_missing_imports in pyproject.toml
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import URL, make_url

from agent_session_manager.core.errors import AsmError, StorageError, ValidationError

Op = Literal["read", "write", "connect"]

#: Everything a database call can raise that is not a bug in the store.
DB_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.SQLAlchemyError,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
)


class SchemaOutOfDate(StorageError):
    """The database schema is behind (or ahead of) this version of the store."""

    def __init__(self, message: str, *, url: str, current: str | None, head: str | None) -> None:
        super().__init__(
            "storage_error",
            message,
            details={"url": url, "current_revision": current, "head_revision": head},
        )


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except sa_exc.ArgumentError:
        return "<invalid database URL>"
    return parsed.render_as_string(hide_password=True)


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def connection_hint(url: str) -> str:
    """What to check when the database cannot be reached."""
    if _is_sqlite(url):
        return (
            "check that the database file's directory exists and is writable, and that no other "
            "process holds a long write lock; set ASM_DATABASE_URL to use another database"
        )
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return (
        f"check that PostgreSQL is running and accepting connections at {where}, that database "
        f"{parsed.database!r} exists and the credentials are right (ASM_DATABASE_URL)"
    )


_PG_CONNECTION_SQLSTATES = ("08", "57P", "28", "3D000")  # connection, shutdown, auth, no db


def _sqlstate(exc: BaseException) -> str | None:
    for e in _chain(exc):
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        orig = getattr(cur, "orig", None)
        cur = orig if isinstance(orig, BaseException) else (cur.__cause__ or cur.__context__)
    return seen


def is_sqlite_locked(exc: BaseException) -> bool:
    """SQLite's ``database is locked`` / ``busy``: another connection holds the write lock."""
    return any(
        "database is locked" in str(e)
        or "database table is locked" in str(e)
        or "SQLITE_BUSY" in str(e)
        for e in _chain(exc)
    )


#: SQLite's SQLITE_FULL and SQLITE_IOERR texts (a journal or WAL write that hit ENOSPC is
#: reported as an I/O error, not always as "full"); PostgreSQL's disk_full SQLSTATE.
_FULL_TEXTS = ("database or disk is full", "disk I/O error", "No space left on device")
_PG_FULL_SQLSTATE = "53100"


def is_storage_full(exc: BaseException) -> bool:
    """The database has no room to write: a full disk, not a broken query."""
    if _sqlstate(exc) == _PG_FULL_SQLSTATE:
        return True
    return any(
        any(text in str(e) for text in _FULL_TEXTS)
        or (isinstance(e, OSError) and e.errno == errno.ENOSPC)
        for e in _chain(exc)
    )


def is_conflict(exc: BaseException) -> bool:
    """A lost race worth re-running: id uniqueness, deadlock, serialization failure."""
    text = str(exc)
    if "uq_asm_events_id" in text or "asm_events.id" in text:
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(
        getattr(getattr(exc, "orig", None), "__cause__", None), "sqlstate", None
    )
    return isinstance(state, str) and state in ("40001", "40P01")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable or the connection was lost."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None and state.startswith(_PG_CONNECTION_SQLSTATES):
        return True
    for e in _chain(exc):
        if isinstance(e, (ConnectionError, socket.gaierror, TimeoutError)):
            return True
        if isinstance(e, OSError) and e.errno in (
            errno.ECONNREFUSED,
            errno.ECONNRESET,
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
            errno.ETIMEDOUT,
            errno.ENOENT,
            errno.EACCES,
        ):
            return True
        name = type(e).__name__
        if name in (
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "ConnectionFailureError",
            "CannotConnectNowError",
            "InternalClientError",
            "TooManyConnectionsError",
        ):
            return True
        text = str(e)
        if (
            "unable to open database file" in text
            or "connection is closed" in text
            # ALLOW_CONNECTIONS false / a database being restarted or recreated (55000)
            or "not currently accepting connections" in text
        ):
            return True
    return False


def invalid_input(message: str, **details: Any) -> ValidationError:
    """A bad argument to a store method (not a database failure)."""
    return ValidationError("invalid_input", message, details=details)


def translate(exc: BaseException, op: Op, url: str) -> AsmError:
    """The taxonomy error for a failure of ``op`` against ``url``; ``exc`` becomes its cause."""
    if isinstance(exc, AsmError):
        return exc
    shown = redact(url)
    detail = f"{type(exc).__name__}: {_first_line(exc)}"
    details = {"url": shown, "operation": op, "cause": detail}
    if is_sqlite_locked(exc):
        return StorageError(
            "storage_connection_failed",
            f"the SQLite database {shown} stayed locked by another writer ({detail}); "
            + connection_hint(url),
            details=details,
        )
    if is_storage_full(exc):
        return StorageError(
            "storage_full",
            f"the event store at {shown} has no space left ({detail}); free disk space or grow "
            "the volume: writes resume by themselves once there is room",
            details=details,
        )
    if op == "connect" or is_connection_error(exc):
        return StorageError(
            "storage_connection_failed",
            f"cannot reach the event store at {shown} ({detail}); {connection_hint(url)}",
            details=details,
        )
    code = "storage_write_failed" if op == "write" else "storage_read_failed"
    verb = "writing to" if op == "write" else "reading from"
    message = f"{verb} the event store at {shown} failed: {detail}"
    return StorageError(code, message, details=details)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__
