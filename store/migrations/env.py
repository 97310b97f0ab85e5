"""Alembic environment of the event store.

``store.upgrade()`` passes an open connection in ``config.attributes["connection"]`` (the
usual path). Run from the ``alembic`` command line, the URL comes from the config or
``ASM_DATABASE_URL`` and an async engine is created here. Logging is left alone: the store is
a library and must not reconfigure its host's logging.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context

from agent_session_manager.store._engine import make_migration_engine, resolve_url
from agent_session_manager.store._schema import METADATA, VERSION_TABLE

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=METADATA,
        version_table=VERSION_TABLE,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _run_with(connection: sa.Connection) -> None:
    # Batch mode lets future ALTERs run on SQLite (which rewrites the table).
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_migration_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_with)
    finally:
        await engine.dispose()


def _url() -> str:
    configured = config.get_main_option("sqlalchemy.url")
    return resolve_url(configured or None)


connection = config.attributes.get("connection")
if connection is not None:
    _run_with(connection)
elif context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async(_url()))
