"""API keys and session tenants (the HTTP gateway's tenancy), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from agent_session_manager.core.errors import AsmError
from agent_session_manager.store import EventStore
from agent_session_manager.store._schema import API_KEYS
from agent_session_manager.store._tenancy import key_hash


async def test_a_key_is_stored_only_as_its_hash_and_finds_its_tenant(store: EventStore) -> None:
    listing, key = await store.create_api_key("acme", "ci")
    assert key.startswith("asm_") and len(key) > 40
    async with store._reader.connect() as conn:
        rows = (await conn.execute(sa.select(API_KEYS))).mappings().all()
    stored = [dict(r) for r in rows if r["key_id"] == listing.key_id]
    assert stored and stored[0]["key_hash"] == key_hash(key)
    assert key not in repr(stored)
    found = await store.api_key(key)
    assert found is not None and found.tenant == "acme" and found.key_id == listing.key_id
    assert await store.api_key(key + "x") is None
    assert await store.api_key("not-a-key") is None


async def test_a_revoked_key_no_longer_authenticates(store: EventStore) -> None:
    listing, key = await store.create_api_key("acme-revoked")
    revoked = await store.revoke_api_key(listing.key_id)
    assert revoked.revoked_at is not None
    again = await store.revoke_api_key(listing.key_id)
    assert again.revoked_at == revoked.revoked_at
    assert await store.api_key(key) is None
    assert [k.key_id for k in await store.api_keys("acme-revoked")] == [listing.key_id]
    with pytest.raises(AsmError) as info:
        await store.revoke_api_key("no-such-key")
    assert info.value.code == "not_found"


async def test_a_bad_tenant_is_a_validation_error(store: EventStore) -> None:
    for tenant in ("", "a b", "x" * 129, "é"):
        with pytest.raises(AsmError) as info:
            await store.create_api_key(tenant)
        assert info.value.code == "validation_error"


async def test_a_session_has_one_tenant(store: EventStore, sid: str) -> None:
    assert await store.session_tenant(sid) is None
    await store.record_session_tenant(sid, "a")
    await store.record_session_tenant(sid, "a")  # idempotent
    with pytest.raises(AsmError) as info:
        await store.record_session_tenant(sid, "b")
    assert info.value.code == "session_already_exists"
    assert await store.session_tenant(sid) == "a"


async def test_a_sessions_claim_records_its_tenant_in_the_same_transaction(
    store: EventStore, sid: str
) -> None:
    await store.claim_session(sid, "owner-1", "wf", "acme")
    await store.claim_session(sid, "owner-1", "wf", "acme")  # a retried claim: a no-op
    assert await store.session_tenant(sid) == "acme"
    # Another tenant's id refuses the claim, and the refused claim leaves no owner behind.
    other = sid + "-b"
    await store.record_session_tenant(other, "globex")
    with pytest.raises(AsmError) as info:
        await store.claim_session(other, "owner-2", "wf", "acme")
    assert info.value.code == "session_already_exists"
    await store.claim_session(other, "owner-3", "wf", "globex")
    assert await store.session_tenant(other) == "globex"
    # No tenant: nothing recorded (no gateway key reaches the session).
    bare = sid + "-c"
    await store.claim_session(bare, "owner-4", "wf")
    assert await store.session_tenant(bare) is None
