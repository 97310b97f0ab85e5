"""Tenancy for the HTTP gateway: API keys bound to tenants, and the tenant of each session.

Keys are stored as their SHA-256 only. A key is ``asm_<key_id>_<secret>`` with a 256-bit
random secret (``secrets.token_urlsafe(32)``): a slow password hash (bcrypt, argon2) exists to
make guessing a *low-entropy* password from a stolen hash expensive, and nobody guesses 2^256;
so a fast hash loses nothing, and the gateway can check a key on every request with one
indexed lookup. The ``key_id`` (public, shown by ``asm keys ls``) names a key for revocation
without its secret ever being shown again.

A session's tenant is recorded once, before its workflow starts (so no request of another
tenant can reach it in between), and never changes: a second record for another tenant is
refused like any claim on an id someone owns.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.contract import check_tenant
from agent_session_manager.core.errors import ResourceError, ValidationError
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._schema import API_KEYS, SESSION_TENANTS

#: Every key starts with this, so secret scanners and people recognise one.
KEY_PREFIX = "asm_"
#: A key's longest form; anything longer is refused before it is hashed.
MAX_KEY_CHARS = 128
_MAX_KEY_NAME_CHARS = 255


class ApiKey(BaseModel):
    """A key as ``asm keys ls`` shows it: never its secret, never its hash."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    tenant: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def key_hash(key: str) -> str:
    """The SHA-256 (hex) a key is stored and looked up as."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def mint_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``; the key is shown once, to whoever created it."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def _row(row: Any) -> ApiKey:
    return ApiKey.model_validate(dict(row._mapping))


_COLUMNS = (
    API_KEYS.c.key_id,
    API_KEYS.c.tenant,
    API_KEYS.c.name,
    API_KEYS.c.created_at,
    API_KEYS.c.revoked_at,
)


async def create_key(
    conn: AsyncConnection, tenant: str, name: str, now: datetime
) -> tuple[ApiKey, str]:
    check_tenant(tenant)
    if len(name) > _MAX_KEY_NAME_CHARS:
        raise ValidationError(
            "validation_error",
            f"a key's name is at most {_MAX_KEY_NAME_CHARS} characters",
            details={"field": "name"},
        )
    key_id, key = mint_key()
    await conn.execute(
        API_KEYS.insert().values(
            key_id=key_id, key_hash=key_hash(key), tenant=tenant, name=name, created_at=now
        )
    )
    return ApiKey(key_id=key_id, tenant=tenant, name=name, created_at=now), key


async def list_keys(conn: AsyncConnection, tenant: str | None) -> list[ApiKey]:
    stmt = sa.select(*_COLUMNS).order_by(API_KEYS.c.created_at, API_KEYS.c.key_id)
    if tenant is not None:
        stmt = stmt.where(API_KEYS.c.tenant == tenant)
    return [_row(r) for r in (await conn.execute(stmt)).all()]


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> ApiKey:
    """Revoke (idempotent: a revoked key keeps its first revocation time)."""
    await conn.execute(
        API_KEYS.update()
        .where(API_KEYS.c.key_id == key_id, API_KEYS.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    row = (await conn.execute(sa.select(*_COLUMNS).where(API_KEYS.c.key_id == key_id))).first()
    if row is None:
        raise ResourceError(
            "not_found",
            f"no API key {key_id!r}: list them with `asm keys ls`",
            details={"key_id": key_id},
        )
    return _row(row)


async def key_for(conn: AsyncConnection, key: str) -> ApiKey | None:
    """The active key whose secret is ``key``; None for anything else (unknown, revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
        return None
    row = (
        await conn.execute(
            sa.select(*_COLUMNS).where(
                API_KEYS.c.key_hash == key_hash(key), API_KEYS.c.revoked_at.is_(None)
            )
        )
    ).first()
    return None if row is None else _row(row)


async def record_session_tenant(
    conn: AsyncConnection, backend: Backend, session_id: str, tenant: str, now: datetime
) -> None:
    """Record ``tenant`` as the session's; ``session_already_exists`` if it is another's."""
    await conn.execute(
        dialect_insert(backend, SESSION_TENANTS)
        .values(session_id=session_id, tenant=tenant, created_at=now)
        .on_conflict_do_nothing(index_elements=["session_id"])
    )
    standing = await session_tenant(conn, session_id)
    if standing != tenant:
        raise ResourceError(
            "session_already_exists",
            f"session id {session_id!r} is taken: create the session without an id",
            details={"session_id": session_id},
        )


async def session_tenant(conn: AsyncConnection, session_id: str) -> str | None:
    row = (
        await conn.execute(
            sa.select(SESSION_TENANTS.c.tenant).where(SESSION_TENANTS.c.session_id == session_id)
        )
    ).first()
    return None if row is None else str(row[0])
