"""Fleet-wide slots in the store (SQLite and PostgreSQL): a limit holds however many stores
ask at once, a released or expired lease frees its slot, waiters are granted fairly across
tenants, a retried run takes over its own lease, session slots end with their session."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from agent_session_manager.core.contract import LifecycleRecord, SessionPatch
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.status import SessionStatus
from agent_session_manager.store import EventStore, SlotRequest, session_lease_id


def _scope() -> str:
    # The database is shared by the test session: every test counts in scopes of its own.
    return f"runs/test/{uuid.uuid4().hex[:10]}"


def _req(scope: str, n: int, i: int, tenant: str = "", holder: str = "w1") -> SlotRequest:
    return SlotRequest(
        lease_id=f"run:{scope}:{i}", kind="run", holder=holder, scopes={scope: n}, tenant=tenant
    )


async def _held(store: EventStore, scope: str) -> list[str]:
    return sorted(
        x.lease_id
        for x in await store.leases(now=time.time())
        if scope in x.scopes and x.state == "held"
    )


async def test_limit_holds_across_concurrent_stores(
    store: EventStore, other_store: EventStore
) -> None:
    scope = _scope()
    now = time.time()
    results = await asyncio.gather(
        *(
            (store if i % 2 else other_store).acquire_slot(
                _req(scope, 3, i), now=now, expires_at=now + 30
            )
            for i in range(10)
        )
    )
    assert sum(r.held for r in results) == 3
    assert all(r.blocked == [scope] for r in results if not r.held)
    # Asked again, once all have queued: each waiter has its own place in the queue.
    again = [
        await store.acquire_slot(_req(scope, 3, i), now=now, expires_at=now + 30)
        for i, r in enumerate(results)
        if not r.held
    ]
    assert sorted(r.position or 0 for r in again) == list(range(1, 8))
    assert len(await _held(store, scope)) == 3


async def test_release_frees_the_slot_for_the_next_waiter(store: EventStore) -> None:
    scope = _scope()
    now = time.time()
    first = await store.acquire_slot(_req(scope, 1, 1), now=now, expires_at=now + 30)
    second = await store.acquire_slot(_req(scope, 1, 2), now=now + 0.01, expires_at=now + 30)
    assert first.held and not second.held and second.position == 1
    await store.release_slot(f"run:{scope}:1", "w1")
    again = await store.acquire_slot(_req(scope, 1, 2), now=now + 0.02, expires_at=now + 30)
    assert again.held
    assert await _held(store, scope) == [f"run:{scope}:2"]


async def test_release_by_another_holder_leaves_the_lease(store: EventStore) -> None:
    scope = _scope()
    now = time.time()
    assert (await store.acquire_slot(_req(scope, 1, 1), now=now, expires_at=now + 30)).held
    await store.release_slot(f"run:{scope}:1", "someone-else")  # a zombie attempt's finally
    assert await _held(store, scope) == [f"run:{scope}:1"]


async def test_expired_lease_is_reclaimed(store: EventStore) -> None:
    scope = _scope()
    now = time.time()
    # The holder died: its lease expired a moment ago and nobody renewed it.
    assert (await store.acquire_slot(_req(scope, 1, 1), now=now - 5, expires_at=now - 0.5)).held
    assert (await store.acquire_slot(_req(scope, 1, 2), now=now, expires_at=now + 30)).held
    assert await _held(store, scope) == [f"run:{scope}:2"]


async def test_renewed_lease_is_not_reclaimed(store: EventStore) -> None:
    scope = _scope()
    now = time.time()
    assert (await store.acquire_slot(_req(scope, 1, 1), now=now, expires_at=now + 1)).held
    assert await store.renew_slot(f"run:{scope}:1", "w1", expires_at=now + 60)
    assert not await store.renew_slot(f"run:{scope}:1", "w2", expires_at=now + 60)
    later = await store.acquire_slot(_req(scope, 1, 2), now=now + 2, expires_at=now + 60)
    assert not later.held


async def test_retried_run_takes_over_its_own_lease(store: EventStore) -> None:
    scope = _scope()
    now = time.time()
    assert (
        await store.acquire_slot(_req(scope, 1, 1, holder="w1/a1"), now=now, expires_at=now + 30)
    ).held
    # Attempt 2 on another worker, before the dead holder's lease expired: same run, same slot.
    retry = await store.acquire_slot(
        _req(scope, 1, 1, holder="w2/a2"), now=now + 1, expires_at=now + 30
    )
    assert retry.held
    leases = [x for x in await store.leases(now=now + 1) if scope in x.scopes]
    assert [(x.holder, x.state) for x in leases] == [("w2/a2", "held")]
    await store.release_slot(f"run:{scope}:1", "w1/a1")  # the old attempt's release: ignored
    assert await _held(store, scope) == [f"run:{scope}:1"]


async def test_waiters_are_granted_fairly_across_tenants(store: EventStore) -> None:
    scope = _scope()
    now = time.time()
    assert (
        await store.acquire_slot(_req(scope, 1, 0, tenant="big"), now=now, expires_at=now + 60)
    ).held
    # "big" queues 20 runs first, then "small" queues one.
    for i in range(1, 21):
        await store.acquire_slot(
            _req(scope, 1, i, tenant="big"), now=now + i * 0.001, expires_at=now + 60
        )
    small = await store.acquire_slot(
        _req(scope, 1, 99, tenant="small"), now=now + 0.1, expires_at=now + 60
    )
    assert small.position == 1  # ahead of big's 20: big already holds the slot
    await store.release_slot(f"run:{scope}:0", "w1")
    assert (
        await store.acquire_slot(
            _req(scope, 1, 5, tenant="big"), now=now + 0.2, expires_at=now + 60
        )
    ).held is False
    assert await _held(store, scope) == [f"run:{scope}:99"]


async def test_session_slots_reject_past_the_limit_and_end_with_the_session(
    store: EventStore,
) -> None:
    scope = f"sessions/agent/{uuid.uuid4().hex[:10]}"
    sids = [f"s-{uuid.uuid4().hex[:10]}" for _ in range(3)]

    def req(sid: str) -> SlotRequest:
        return SlotRequest(
            lease_id=session_lease_id(sid),
            kind="session",
            holder=sid,
            scopes={scope: 2},
            session_id=sid,
        )

    await store.admit_session(req(sids[0]), now=time.time())
    await store.admit_session(req(sids[1]), now=time.time())
    await store.admit_session(req(sids[1]), now=time.time())  # a replayed claim: still one
    with pytest.raises(AsmError) as refused:
        await store.admit_session(req(sids[2]), now=time.time())
    assert refused.value.code == "max_sessions_exceeded"
    assert refused.value.details["limit"] == 2
    # The first session ends: its terminal record frees its slot in the same commit.
    await store.record(
        LifecycleRecord(
            event_id=f"{sids[0]}/wf/9/session_completed",
            session_id=sids[0],
            type="session_completed",
            session_status=SessionStatus.COMPLETED,
            session_row=SessionPatch(agent_id="a"),
        )
    )
    await store.admit_session(req(sids[2]), now=time.time())
    held = {x.session_id for x in await store.leases(now=time.time()) if scope in x.scopes}
    assert held == {sids[1], sids[2]}


async def test_cooldown_only_extends(store: EventStore) -> None:
    key = f"cred-{uuid.uuid4().hex[:8]}/model"
    now = time.time()
    assert await store.set_cooldown(key, now + 10, "provider_rate_limited") == pytest.approx(
        now + 10
    )
    assert await store.set_cooldown(key, now + 2, "provider_rate_limited") == pytest.approx(
        now + 10
    )
    assert await store.cooldown([key, "other"]) == pytest.approx(now + 10)
    assert await store.cooldown([f"none-{uuid.uuid4().hex}"]) == 0.0


async def test_rate_budget_spends_then_waits(store: EventStore) -> None:
    key = f"cred-{uuid.uuid4().hex[:8]}"
    now = time.time()
    waits = [await store.take_rate_token(key, 3, now=now) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(20.0, rel=0.01)  # 3 per minute: one every 20 s
    assert await store.take_rate_token(key, 3, now=now + 20.5) == 0.0
