"""Ownership of ids is enforced by the store: one session workflow per session id, one session
per run id, however claims interleave, and ids already in the log are never taken over."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Literal

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent_session_manager.store._migrate as migrate
from agent_session_manager.core.contract import LifecycleRecord, RunPatch, SessionPatch
from agent_session_manager.core.errors import AsmError
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.store._engine import make_migration_engine

Kind = Literal["session", "run"]
#: (kind, which id, which owner): few ids and owners, so claims collide often.
Claim = tuple[Kind, int, int]

claims_strategy = st.lists(
    st.tuples(st.sampled_from(["session", "run"]), st.integers(0, 2), st.integers(0, 2)),
    min_size=1,
    max_size=16,
)


async def _claim(s: EventStore, tag: str, claim: Claim) -> bool:
    """Make one claim; True if it was granted (raises on anything but a refusal)."""
    kind, which, owner = claim
    try:
        if kind == "session":
            await s.claim_session(f"{tag}-s{which}", f"owner-{owner}", f"wf-{owner}")
        else:
            await s.claim_run(f"{tag}-r{which}", f"{tag}-session{owner}")
    except AsmError as err:
        assert err.code == ("session_already_exists" if kind == "session" else "validation_error")
        assert not err.retryable
        return False
    return True


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(claims=claims_strategy, width=st.integers(1, 6))
async def test_interleaved_claims_never_give_one_id_two_owners(
    store: EventStore, other_store: EventStore, claims: list[Claim], width: int
) -> None:
    tag = uuid.uuid4().hex[:10]
    stores = [store, other_store]  # two stores on one database: two processes racing
    granted: list[bool] = []
    # ``width`` claims race at a time, through alternating stores.
    for at in range(0, len(claims), width):
        batch = claims[at : at + width]
        granted += await asyncio.gather(
            *(_claim(stores[(at + i) % 2], tag, c) for i, c in enumerate(batch))
        )
    owners: dict[tuple[Kind, int], set[int]] = defaultdict(set)
    for (kind, which, owner), ok in zip(claims, granted, strict=True):
        if ok:
            owners[(kind, which)].add(owner)
    claimed = {(kind, which) for kind, which, _ in claims}
    for key in claimed:
        assert len(owners[key]) == 1, (key, owners[key])  # exactly one owner, never two
        (winner,) = owners[key]
        # The owner claims again at will; every other owner is refused, to this day.
        assert await _claim(store, tag, (key[0], key[1], winner))
        for other in {0, 1, 2} - {winner}:
            assert not await _claim(other_store, tag, (key[0], key[1], other))


async def test_a_session_already_in_the_log_is_not_taken_over(store: EventStore, sid: str) -> None:
    await store.record(
        LifecycleRecord(
            event_id=f"{sid}/created",
            session_id=sid,
            type="session_created",
            session_status="pending",
            session_row=SessionPatch(agent_id="a", provider="mock"),
        )
    )
    with pytest.raises(AsmError) as err:
        await store.claim_session(sid, "owner-new", "session-x")
    assert err.value.code == "session_already_exists"
    assert "new session_id" in err.value.message


async def test_a_run_started_on_its_own_keeps_its_session(store: EventStore, sid: str) -> None:
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    await store.record(
        LifecycleRecord(
            event_id=f"{sid}/{run_id}/started",
            session_id=sid,
            run_id=run_id,
            type="run_started",
            run_status="running",
            run_row=RunPatch(turn=1, session_id=sid),
        )
    )
    await store.claim_run(run_id, sid)  # its own session: granted
    with pytest.raises(AsmError) as err:
        await store.claim_run(run_id, f"{sid}-other")
    assert err.value.code == "validation_error"
    assert sid not in err.value.message  # the other session's id is not the caller's business


EmptyDb = Callable[[], Awaitable[str]]


async def test_upgrade_claims_every_existing_session_and_run(empty_db: EmptyDb, sid: str) -> None:
    url = await empty_db()
    await upgrade(url)
    cfg = migrate.alembic_config(url)
    engine = make_migration_engine(url)

    def downgrade(conn: sa.Connection) -> None:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001_initial")

    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
    finally:
        await engine.dispose()
    old = await open_store(url, check_schema=False)  # a store from before ownership
    try:
        await old.record(
            LifecycleRecord(
                event_id=f"{sid}/started",
                session_id=sid,
                run_id="r-old",
                type="run_started",
                session_row=SessionPatch(agent_id="a", provider="mock"),
                run_row=RunPatch(turn=1, session_id=sid),
            )
        )
    finally:
        await old.close()
    await upgrade(url)
    s = await open_store(url)
    try:
        with pytest.raises(AsmError) as err:
            await s.claim_session(sid, "owner-new")
        assert err.value.code == "session_already_exists"
        with pytest.raises(AsmError) as err:
            await s.claim_run("r-old", "someone-else")
        assert err.value.code == "validation_error"
        await s.claim_run("r-old", sid)
    finally:
        await s.close()
