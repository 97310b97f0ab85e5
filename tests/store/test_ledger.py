"""The cost ledger: one row per (run, model call, attempt), written once; totals per run,
session, agent, tenant and day; superseded attempts; the spend a budget check reads."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.core.errors import ValidationError
from agent_session_manager.core.ledger import LedgerEntry, Outcome
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore


def _entry(
    sid: str,
    run: str,
    attempt: int,
    outcome: Outcome,
    *,
    step: int = 1,
    agent: str = "agent-l",
    tenant: str | None = None,
    day: str = "2026-12-03",
    tokens: tuple[int, int, int, int] = (10, 5, 2, 3),
    cost: int | None = 100,
) -> LedgerEntry:
    i, o, w, r = tokens
    return LedgerEntry(
        run_id=run,
        step=step,
        attempt=attempt,
        session_id=sid,
        agent_id=agent,
        tenant=tenant,
        provider="anthropic",
        model="claude-sonnet-4-6",
        credential="ANTHROPIC_API_KEY",
        usage=TokenUsage(
            input_tokens=i,
            output_tokens=o,
            cache_creation_input_tokens=w,
            cache_read_input_tokens=r,
        ),
        cost_micros=cost,
        price_version="v1" if cost is not None else None,
        outcome=outcome,
        error_code=None if outcome == "completed" else "provider_unavailable",
        day=day,
    )


async def test_a_second_write_of_an_attempt_is_a_no_op(store: EventStore, sid: str) -> None:
    run = f"r-{uuid.uuid4().hex[:8]}"
    first = await store.bill(_entry(sid, run, 1, "failed"))
    again = await store.bill(_entry(sid, run, 1, "failed", tokens=(999, 999, 0, 0), cost=999))
    assert first == again
    assert first.attempts == 1 and first.usage.total_tokens == 20 and first.cost_micros == 100


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tokens=st.tuples(*[st.integers(0, 10**9)] * 4),
    cost=st.none() | st.integers(0, 10**12),
    thinking=st.none() | st.integers(0, 10**6),
    outcome=st.sampled_from(["completed", "failed", "cancelled"]),
)
async def test_a_runs_first_row_totals_as_reading_it_back(
    store: EventStore,
    sid: str,
    tokens: tuple[int, int, int, int],
    cost: int | None,
    thinking: int | None,
    outcome: Outcome,
) -> None:
    # bill() answers a run's first row without reading the ledger: it must say what a read says
    run = f"r-{uuid.uuid4().hex[:8]}"
    entry = _entry(sid, run, 1, outcome, tokens=tokens, cost=cost)
    entry = entry.model_copy(update={"thinking_tokens": thinking})
    billed = await store.bill(entry)
    assert billed == await store.run_total(run)
    assert await store.bill(entry) == billed  # the repeated write reads it back


async def test_a_completed_attempt_supersedes_the_failed_ones_and_the_run_total_counts_all(
    store: EventStore, sid: str
) -> None:
    run = f"r-{uuid.uuid4().hex[:8]}"
    for attempt in (1, 2, 3):
        await store.bill(_entry(sid, run, attempt, "failed"))
    total = await store.bill(_entry(sid, run, 4, "completed"))
    assert total.attempts == 4
    assert total.usage == TokenUsage(
        input_tokens=40, output_tokens=20, cache_creation_input_tokens=8, cache_read_input_tokens=12
    )
    assert total.cost_micros == 400
    outcomes = [e.outcome for e in await store.ledger(run_id=run)]
    assert outcomes == ["superseded", "superseded", "superseded", "completed"]


async def test_each_model_call_of_a_loop_has_its_own_rows_and_supersedes_only_its_own(
    store: EventStore, sid: str
) -> None:
    run = f"r-{uuid.uuid4().hex[:8]}"
    await store.bill(_entry(sid, run, 1, "failed", step=1))
    await store.bill(_entry(sid, run, 2, "completed", step=1))
    # The second model call: attempt 1 again, its own row (not a no-op on step 1's).
    await store.bill(_entry(sid, run, 1, "failed", step=2))
    # A retried write of step 2's first attempt is still a no-op.
    await store.bill(_entry(sid, run, 1, "failed", step=2, tokens=(999, 0, 0, 0)))
    total = await store.bill(_entry(sid, run, 2, "completed", step=2))
    await store.bill(_entry(sid, run, 1, "failed", step=3))
    rows = await store.ledger(run_id=run)
    assert [(r.step, r.attempt, r.outcome) for r in rows] == [
        (1, 1, "superseded"),
        (1, 2, "completed"),
        (2, 1, "superseded"),
        (2, 2, "completed"),
        (3, 1, "failed"),  # no later attempt of step 3 completed
    ]
    assert total.attempts == 4 and total.usage.total_tokens == 80 and total.cost_micros == 400
    (by_run,) = await store.usage_totals("run", run_id=run)
    assert by_run.attempts == 5 and by_run.cost_micros == 500
    assert (await store.run_total(run)).usage.input_tokens == 50


async def test_totals_group_by_session_agent_tenant_and_day(store: EventStore, sid: str) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    other = f"{sid}-b"
    await store.bill(_entry(sid, f"{sid}-r1", 1, "completed", agent=agent, tenant=tenant))
    await store.bill(
        _entry(sid, f"{sid}-r2", 1, "failed", agent=agent, tenant=tenant, day="2026-12-04")
    )
    await store.bill(_entry(other, f"{sid}-r3", 1, "cancelled", agent=agent, cost=None))
    by_session = await store.usage_totals("session", agent_id=agent)
    assert {(t.key, t.attempts, t.cost_micros) for t in by_session} == {
        (sid, 2, 200),
        (other, 1, 0),
    }
    assert next(t for t in by_session if t.key == other).unpriced_attempts == 1
    by_day = await store.usage_totals("day", agent_id=agent)
    assert [(t.key, t.attempts) for t in by_day] == [("2026-12-03", 2), ("2026-12-04", 1)]
    (by_tenant,) = await store.usage_totals("tenant", tenant=tenant)
    assert by_tenant.key == tenant and by_tenant.usage.total_tokens == 40
    (by_agent,) = await store.usage_totals("agent", agent_id=agent, since="2026-12-04")
    assert by_agent.attempts == 1
    assert (await store.spend(agent_id=agent, day="2026-12-03")).tokens == 40
    assert (await store.spend(tenant=tenant)).cost_micros == 200
    assert (await store.spend(session_id=sid)).tokens == 40
    assert (await store.last_call(other)).tokens == 20
    assert (await store.last_call(f"{sid}-none")).tokens == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"agent_id": ""},
        {"agent_id": "x" * 256},
        {"since": "yesterday"},
        {"until": "2026-1-1"},
        {"limit": 0},
        {"group": "planet"},
    ],
)
async def test_bad_filters_are_invalid_input(store: EventStore, kwargs: dict[str, object]) -> None:
    kwargs = dict(kwargs)  # the parameter is shared by both backends' runs
    group = kwargs.pop("group", "day")
    with pytest.raises(ValidationError) as err:
        await store.usage_totals(group, **kwargs)  # type: ignore[arg-type]
    assert err.value.code == "invalid_input"


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=300))
async def test_any_text_filter_is_answered_or_refused_typed(store: EventStore, value: str) -> None:
    try:
        totals = await store.usage_totals("session", agent_id=value, since=value)
    except ValidationError as err:
        assert err.code == "invalid_input"
    else:
        assert totals == []
