"""Budgets: validated configuration, and the pure decision made before every provider call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.core.budget import (
    Budget,
    BudgetPolicy,
    Spend,
    exceeded,
    judge,
    parse_budgets,
    tenant_of,
)
from agent_session_manager.core.errors import ValidationError


def test_a_call_that_would_pass_the_limit_is_refused_before_it_is_made() -> None:
    limit = Budget(tokens=100)
    assert judge(limit, Spend(tokens=40), Spend(tokens=40)) == "warn"  # 80 >= 0.8 * 100
    assert judge(limit, Spend(tokens=40), Spend(tokens=30)) == "ok"
    assert judge(limit, Spend(tokens=80), Spend(tokens=40)) == "exceeded"
    assert judge(limit, Spend(tokens=100), Spend()) == "exceeded"  # reached: nothing more
    assert judge(limit, Spend(tokens=99), Spend()) == "warn"


def test_money_and_tokens_are_both_enforced() -> None:
    limit = Budget(tokens=10_000, cost_micros=1_000_000, warn_at=0.5)
    assert judge(limit, Spend(tokens=10, cost_micros=900_000), Spend(cost_micros=200_000)) == (
        "exceeded"
    )
    assert judge(limit, Spend(tokens=5_000), Spend()) == "warn"


def test_tenant_is_the_tenant_tag() -> None:
    assert tenant_of(["x", "tenant:acme", "tenant:other"]) == "acme"
    assert tenant_of(["tenant:", "x"]) is None


def test_policy_falls_back_to_the_wildcard() -> None:
    policy = BudgetPolicy(
        agents={"*": Budget(tokens=5), "a": Budget(tokens=7)}, tenants={"t": Budget(tokens=9)}
    )
    assert policy.agent("a") == Budget(tokens=7)
    assert policy.agent("b") == Budget(tokens=5)
    assert policy.tenant("t") == Budget(tokens=9)
    assert policy.tenant("u") is None and policy.tenant(None) is None


def test_exceeded_is_a_final_resource_error_saying_what_to_do() -> None:
    err = exceeded("session", "s1", Budget(tokens=10), Spend(tokens=10), Spend(tokens=1))
    assert err.code == "budget_exceeded" and err.category == "resource"
    assert not err.retryable
    assert "raise the budget" in err.message
    assert err.details["scope"] == "session"


@pytest.mark.parametrize(
    "config",
    [
        {"session": {}},
        {"session": {"tokens": 0}},
        {"session": {"tokens": -5}},
        {"session": {"tokens": 2**70}},
        {"session": {"tokens": 5, "warn_at": 0}},
        {"session": {"tokens": 5, "warn_at": 1.5}},
        {"session": {"tokens": 5, "surprise": 1}},
        {"agents": {"": {"tokens": 5}}},
        {"agents": {"a": None}},
        {"tenants": []},
        {"planets": {}},
    ],
)
def test_bad_budgets_are_validation_errors(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        parse_budgets(json.dumps(config), "ASM_BUDGETS")
    assert err.value.code == "validation_error"
    assert "ASM_BUDGETS" in err.value.message


def test_nan_warn_at_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_budgets('{"session": {"tokens": 5, "warn_at": NaN}}', "x")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
_budget_like = st.fixed_dictionaries(
    {},
    optional={
        "tokens": st.integers() | st.none() | st.text(max_size=5),
        "cost_micros": st.integers() | st.none() | st.floats(),
        "warn_at": st.floats() | st.integers(),
    },
)


@given(
    st.one_of(
        _json,
        st.fixed_dictionaries(
            {},
            optional={
                "session": _budget_like | _json,
                "agents": st.dictionaries(st.text(max_size=300), _budget_like, max_size=3),
                "tenants": st.dictionaries(st.text(max_size=300), _budget_like, max_size=3),
            },
        ),
    )
)
def test_any_config_is_a_policy_or_a_typed_error(config: Any) -> None:
    try:
        policy = parse_budgets(json.dumps(config), "fuzz")
    except ValidationError as err:
        assert err.code == "validation_error"
        return
    for budget in [policy.session, *policy.agents.values(), *policy.tenants.values()]:
        if budget is not None:
            assert budget.tokens is not None or budget.cost_micros is not None
            assert 0 < budget.warn_at <= 1


@given(
    limit=st.integers(1, 10**9),
    spent=st.integers(0, 10**9),
    nxt=st.integers(0, 10**9),
)
def test_judge_never_lets_a_projection_over_the_limit_through(
    limit: int, spent: int, nxt: int
) -> None:
    verdict = judge(Budget(tokens=limit), Spend(tokens=spent), Spend(tokens=nxt))
    assert (verdict == "exceeded") == (spent >= limit or spent + nxt > limit)


@given(budget=_budget_like | _json)
def test_a_session_spec_budget_is_valid_or_refused_by_the_model(budget: Any) -> None:
    from pydantic import ValidationError as PydanticValidationError

    from agent_session_manager.core.contract import SessionSpec

    try:
        spec = SessionSpec.model_validate({"agent_id": "a", "budget": budget})
    except PydanticValidationError:
        return  # the workflow's input decoder turns this into validation_error
    assert spec.budget is None or spec.budget.tokens or spec.budget.cost_micros
