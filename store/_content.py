"""Content stored by reference: idempotent, content-addressed writes and verified reads.

A prompt, system prompt or reply above the inline limit (:mod:`core.content`) lives here, and
workflow payloads carry only its :class:`~core.content.ContentRef`. Rows are keyed by the
digest of their bytes, so a write of content that exists is a no-op (two runs sending the
same 10 MB prompt store it once) and a row never changes.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.content import ContentRef, digest_of
from agent_session_manager.core.errors import ResourceError, StorageError
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._schema import CONTENT

_SELECT = sa.select(CONTENT.c.body).where(CONTENT.c.digest == sa.bindparam("digest"))


@functools.cache
def _insert(backend: Backend) -> Any:
    # DO NOTHING: the row for a digest is the same content whoever wrote it first.
    return dialect_insert(backend, CONTENT).on_conflict_do_nothing(index_elements=["digest"])


async def put(
    conn: AsyncConnection, backend: Backend, ref: ContentRef, body: bytes, now: datetime
) -> None:
    """Store ``body`` under ``ref`` unless it is there already."""
    await conn.execute(
        _insert(backend),
        {
            "digest": ref.digest,
            "size": ref.size,
            "media_type": ref.media_type,
            "body": body,
            "created_at": now,
        },
    )


async def get(conn: AsyncConnection, ref: ContentRef) -> bytes:
    """The bytes ``ref`` names; ``not_found`` if absent, ``storage_read_failed`` if corrupt."""
    body = (await conn.execute(_SELECT, {"digest": ref.digest})).scalar_one_or_none()
    if body is None:
        raise ResourceError(
            "not_found",
            f"content {ref.digest} ({ref.size} bytes) is not in the event store: it was "
            "never stored here, or the store is not the one the worker writes to "
            "(check ASM_DATABASE_URL)",
            details={"digest": ref.digest, "size": ref.size},
        )
    data = bytes(body)
    if len(data) != ref.size or digest_of(data) != ref.digest:
        # A reference is a promise about exact bytes: never hand a provider or a caller
        # anything else.
        raise StorageError(
            "storage_read_failed",
            f"content {ref.digest} in the event store does not match its digest or size "
            f"({len(data)} bytes stored, {ref.size} expected): the row is corrupt",
            details={"digest": ref.digest, "size": ref.size, "stored_size": len(data)},
        )
    return data
