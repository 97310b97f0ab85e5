"""The fleet-limits decisions, pure: the grant never exceeds a limit, leaves no fitting waiter
waiting, serves tenants in turn; configuration is bounded; scopes and tenants are derived
from what a session and a worker know."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_session_manager.core.limits import (
    Limits,
    LimitSlot,
    bucket_take,
    credential_id,
    grant_slots,
    jain_index,
    queue_position,
    run_scopes,
)

SCOPES = ["runs", "runs/model/a", "runs/model/b", "runs/tenant/x"]

slot_strategy = st.builds(
    lambda i, tenant, scopes, limit, held: LimitSlot(
        id=f"s{i}",
        tenant=tenant,
        scopes=dict.fromkeys(scopes, limit),
        enqueued_at=float(i),
        held=held,
    ),
    st.integers(0, 10_000),
    st.sampled_from(["", "t1", "t2", "t3"]),
    st.lists(st.sampled_from(SCOPES), min_size=1, max_size=3, unique=True),
    st.integers(1, 4),
    st.booleans(),
)


def _unique(slots: list[LimitSlot]) -> list[LimitSlot]:
    return list({s.id: s for s in slots}.values())


def _in_use(slots: list[LimitSlot], granted: set[str]) -> Counter[str]:
    use: Counter[str] = Counter()
    for s in slots:
        if s.held or s.id in granted:
            use.update(s.scopes.keys())
    return use


@given(st.lists(slot_strategy, max_size=40).map(_unique))
def test_grant_never_exceeds_a_limit_and_leaves_no_fitting_waiter(slots: list[LimitSlot]) -> None:
    limits: dict[str, int] = {}
    for s in slots:
        for k, n in s.scopes.items():
            limits[k] = min(n, limits.get(k, n))
    before = _in_use(slots, set())
    decision = grant_slots(slots)
    granted = set(decision.granted)
    assert granted <= {s.id for s in slots if not s.held}
    after = _in_use(slots, granted)
    for scope, used in after.items():
        # Held leases may already exceed a limit that was just lowered: grants never add to it.
        assert used <= max(limits[scope], before[scope])
        if used > limits[scope]:
            assert used == before[scope]
    # Work-conserving: every waiter left has a full scope.
    for s in decision.order:
        assert any(after[k] >= limits[k] for k in s.scopes)
    assert {s.id for s in decision.order} == {s.id for s in slots if not s.held} - granted


@given(st.integers(1, 5), st.integers(1, 30), st.integers(1, 30))
def test_tenants_take_turns_however_much_each_queued(limit: int, big: int, small: int) -> None:
    slots = [
        LimitSlot(id=f"b{i}", tenant="big", scopes={"runs": limit}, enqueued_at=float(i))
        for i in range(big)
    ] + [
        LimitSlot(id=f"s{i}", tenant="small", scopes={"runs": limit}, enqueued_at=1000.0 + i)
        for i in range(small)
    ]
    granted = grant_slots(slots).granted
    tenants = Counter(g[0] for g in granted)
    assert len(granted) == min(limit, big + small)
    assert abs(tenants["b"] - tenants["s"]) <= 1 or min(tenants["b"], tenants["s"]) in (big, small)


def test_the_tenant_served_least_recently_goes_first() -> None:
    waiting = [
        LimitSlot(id="big-1", tenant="big", scopes={"runs": 1}, enqueued_at=1.0),
        LimitSlot(id="small-1", tenant="small", scopes={"runs": 1}, enqueued_at=2.0),
    ]
    # big was just served (and queued first): small goes next.
    assert grant_slots(waiting, {"big": 5.0, "small": 1.0}).granted == ["small-1"]
    assert grant_slots(waiting, {"big": 5.0}).granted == ["small-1"]
    assert grant_slots(waiting, {}).granted == ["big-1"]  # nobody served yet: FIFO


def test_position_counts_only_waiters_that_compete() -> None:
    order = [
        LimitSlot(id="a", tenant="", scopes={"runs/model/a": 1}, enqueued_at=0),
        LimitSlot(id="b", tenant="", scopes={"runs/model/b": 1}, enqueued_at=1),
        LimitSlot(id="c", tenant="", scopes={"runs/model/b": 1}, enqueued_at=2),
    ]
    assert [queue_position(order, x) for x in ("a", "b", "c", "zz")] == [1, 1, 2, None]


@given(
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 1e6, allow_nan=False),
    st.floats(0, 1e6, allow_nan=False),
    st.integers(1, 10_000),
)
def test_bucket_never_goes_negative_or_over_capacity(
    tokens: float, updated: float, now: float, rpm: int
) -> None:
    level, at, wait = bucket_take(min(tokens, rpm), updated, now, rpm)
    assert 0 <= level <= rpm
    assert at == now
    assert wait == 0 or (wait > 0 and level < 1)
    assert math.isfinite(wait)


@given(st.dictionaries(st.text(max_size=300), st.integers(-5, 2_000_000), max_size=300))
def test_limit_tables_are_bounded(table: dict[str, int]) -> None:
    ok = (
        len(table) <= 256
        and all(k.strip() and len(k) <= 255 for k in table)
        and all(1 <= v <= 1_000_000 for v in table.values())
    )
    if ok:
        assert Limits(max_runs_per_model=table).max_runs_per_model == table
    else:
        with pytest.raises(ValidationError):
            Limits(max_runs_per_model=table)


@pytest.mark.parametrize(
    "field,value",
    [
        ("max_runs", 0),
        ("max_runs", -1),
        ("max_runs", 10**12),
        ("poll_seconds", float("nan")),
        ("poll_seconds", 0),
        ("default_cooldown_seconds", float("inf")),
        ("session_overflow", "drop"),
        ("unknown_limit", 3),
    ],
)
def test_bad_limits_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Limits.model_validate({field: value})


def test_scopes_are_only_the_configured_ones() -> None:
    assert run_scopes(Limits(), provider="p", model="m", credential="c", tenant="t") == {}
    limits = Limits(max_runs=5, max_runs_per_model={"p/m": 2}, max_runs_per_tenant=1)
    assert run_scopes(limits, provider="p", model="m", credential="c", tenant="t") == {
        "runs": 5,
        "runs/model/p/m": 2,
        "runs/tenant/t": 1,
    }


def test_credential_id_names_the_key_without_showing_it() -> None:
    one = credential_id("anthropic", {"ANTHROPIC_API_KEY": "sk-secret-1"})
    assert one == credential_id("anthropic", {"ANTHROPIC_API_KEY": "sk-secret-1"})
    assert one != credential_id("anthropic", {"ANTHROPIC_API_KEY": "sk-secret-2"})
    assert "secret" not in one and one.startswith("anthropic:")


def test_jain_index() -> None:
    assert jain_index([3, 3, 3, 3]) == pytest.approx(1.0)
    assert jain_index([4, 0, 0, 0]) == pytest.approx(0.25)
