"""Alembic, driven programmatically: ``upgrade()`` and the schema check ``open_store`` runs.

The alembic environment and versions ship inside the package (``store/migrations``), so
nothing depends on the current directory. For developers, ``alembic -c store/alembic.ini
revision --autogenerate -m …`` works too (``ASM_DATABASE_URL`` names the database).
"""

from __future__ import annotations

import asyncio
import weakref
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.errors import AsmError
from agent_session_manager.store._engine import backend_of, make_migration_engine, resolve_url
from agent_session_manager.store._errors import DB_ERRORS, SchemaOutOfDate, redact, translate
from agent_session_manager.store._schema import VERSION_TABLE

_HERE = Path(__file__).resolve().parent
#: Serializes concurrent ``upgrade`` calls on one PostgreSQL database (two workers starting).
_PG_UPGRADE_LOCK_KEY = 0x61736D5F6462  # "asm_db"

UPGRADE_HINT = "run `asm db upgrade`"


def alembic_config(url: str) -> Config:
    """The store's alembic configuration, pointing at the packaged migrations."""
    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    # ConfigParser interpolation: a literal '%' in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@cache
def head_revision() -> str:
    """The newest migration this version of the store knows."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "store/migrations/versions is empty"
    return head


@cache
def known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(rev.revision for rev in script.walk_revisions())


def _current_revision(conn: sa.Connection) -> str | None:
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


#: One per event loop: alembic keeps the running migration's ``op`` and ``context`` in module
#: globals, so two upgrades interleaving in one process (two greenlets of one loop) corrupt
#: each other ("'NoneType' object has no attribute 'create_table'"). Across processes the
#: database's own lock serializes them.
_UPGRADE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _upgrade_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _UPGRADE_LOCKS.get(loop)
    if lock is None:
        lock = _UPGRADE_LOCKS[loop] = asyncio.Lock()
    return lock


async def upgrade(url: str | None = None) -> str:
    """Migrate the database at ``url`` (default: as :func:`store.open_store`) to head.

    Safe to call concurrently and repeatedly; returns the revision the database is at.
    """
    async with _upgrade_lock():
        return await _upgrade(url)


async def _upgrade(url: str | None) -> str:
    resolved = resolve_url(url)
    cfg = alembic_config(resolved)

    def _run(conn: sa.Connection) -> str | None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return _current_revision(conn)

    engine = make_migration_engine(resolved)
    try:
        async with engine.begin() as conn:
            if backend_of(resolved) == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_UPGRADE_LOCK_KEY}
                )
            revision = await conn.run_sync(_run)
    except AsmError:
        raise
    except DB_ERRORS as exc:
        raise translate(exc, "write", resolved) from exc
    finally:
        await engine.dispose()
    assert revision is not None
    return revision


async def check_schema(conn: AsyncConnection, url: str) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at this store's head revision."""
    current = await conn.run_sync(_current_revision)
    head = head_revision()
    if current == head:
        return
    shown = redact(url)
    if current is None:
        message = f"the event store at {shown} has no asm schema yet: {UPGRADE_HINT}"
    elif current in known_revisions():
        message = (
            f"the event store schema at {shown} is out of date (revision {current}, this "
            f"version of asm needs {head}): {UPGRADE_HINT}"
        )
    else:
        message = (
            f"the event store schema at {shown} (revision {current}) is newer than this "
            f"version of asm knows (head {head}): upgrade agent-session-manager"
        )
    raise SchemaOutOfDate(message, url=shown, current=current, head=head)
