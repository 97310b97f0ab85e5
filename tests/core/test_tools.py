"""Tool descriptions, policies and action digests (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_session_manager.core.tools import (
    CliApprovalRequest,
    ToolSpec,
    action_digest,
    effective_policy,
    policy_version,
    sha256_of,
)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def digest(args: dict[str, Any], spec: ToolSpec, expires_at: str | None = None) -> str:
    return action_digest(
        call_id="toolu_1",
        tool=spec.name,
        arguments_sha256=sha256_of(args),
        policy_version=policy_version(spec, effective_policy(spec, {})),
        expires_at=expires_at,
    )


@given(arguments)
def test_the_digest_ignores_key_order(args: dict[str, Any]) -> None:
    spec = ToolSpec(name="t", approval="ask")
    assert digest(args, spec) == digest(dict(reversed(list(args.items()))), spec)


@given(arguments, arguments)
def test_other_arguments_have_another_digest(a: dict[str, Any], b: dict[str, Any]) -> None:
    spec = ToolSpec(name="t", approval="ask")
    assert (digest(a, spec) == digest(b, spec)) == (sha256_of(a) == sha256_of(b))


def test_policy_version_and_expiry_are_bound_into_the_digest() -> None:
    args = {"path": "/tmp"}
    ask = ToolSpec(name="t", approval="ask")
    assert digest(args, ask) != digest(args, ask.model_copy(update={"version": "2"}))
    assert digest(args, ask) != digest(args, ask, expires_at="2030-01-01T00:00:00+00:00")
    assert policy_version(ask, "ask") != policy_version(ask, "always")


def test_overrides_win_over_the_tool_policy() -> None:
    spec = ToolSpec(name="t", approval="always")
    assert effective_policy(spec, {"t": "never"}) == "never"
    assert effective_policy(spec, {"other": "ask"}) == "always"


@pytest.mark.parametrize(
    "bad",
    [
        {"name": ""},
        {"name": "has space"},
        {"name": "x" * 65},
        {"name": "t", "input_schema": {"type": "string"}},
        {"name": "t", "input_schema": {"type": "object", "description": "x" * 20_000}},
        {"name": "t", "timeout_seconds": float("inf")},
        {"name": "t", "max_attempts": 0},
        {"name": "t", "approval": "sometimes"},
    ],
)
def test_tool_specs_are_bounded(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ToolSpec.model_validate(bad)


def _request(activity_id: str | None, attempt: int | None) -> CliApprovalRequest:
    return CliApprovalRequest.model_validate(
        {
            "activity_id": activity_id,
            "attempt": attempt,
            "approval": {
                "run_id": "r",
                "session_id": "s",
                "call_id": "c",
                "tool": "Bash",
                "arguments_sha256": sha256_of({}),
                "policy_version": "v",
                "digest": sha256_of({"c": 1}),
            },
        }
    )


@given(
    st.one_of(st.none(), st.text(max_size=255)),
    st.one_of(st.none(), st.integers(min_value=1, max_value=1_000_000)),
)
def test_asked_by_takes_any_activity_id_and_never_raises(
    activity_id: str | None, attempt: int | None
) -> None:
    seq, att = _request(activity_id, attempt).asked_by()
    assert seq >= 0 and att == (attempt or 0)


@given(st.integers(1, 10_000), st.integers(1, 50), st.integers(1, 10_000), st.integers(1, 50))
def test_asked_by_orders_provider_calls_by_activity_then_attempt(
    a_seq: int, a_att: int, b_seq: int, b_att: int
) -> None:
    a = _request(str(a_seq), a_att).asked_by()
    b = _request(str(b_seq), b_att).asked_by()
    assert (a < b) == ((a_seq, a_att) < (b_seq, b_att))
