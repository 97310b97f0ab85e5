"""The context policy: which earlier messages a run sends (core.context), and its input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.core.context import fit_context, message_chars
from agent_session_manager.core.contract import ContextPolicy, Message, SessionSpec
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.temporal import data_converter, decode_input

_message = st.builds(
    Message,
    role=st.sampled_from(["user", "assistant"]),
    content=st.one_of(
        st.text(min_size=1, max_size=300),
        st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()}), min_size=1),
    ),
)
_runs = st.lists(st.lists(_message, min_size=1, max_size=4), max_size=12)
_policy = st.builds(
    ContextPolicy, max_messages=st.integers(2, 30), max_chars=st.integers(1_000, 3_000)
)


@given(_runs, _policy)
def test_fit_keeps_the_newest_whole_runs_within_both_limits(
    runs: list[list[Message]], policy: ContextPolicy
) -> None:
    kept = fit_context(runs, policy, complete=True)
    assert len(kept) <= policy.max_messages
    assert sum(message_chars(m) for m in kept) <= policy.max_chars
    # Whole runs, the newest ones, in order: the kept list is the concatenation, oldest
    # first, of runs[k-1] … runs[0] for some k ...
    k = 0
    while sum(len(r) for r in runs[:k]) < len(kept):
        k += 1
    assert kept == [m for run in reversed(runs[:k]) for m in run]
    # ... and the next older run would not have fit.
    if k < len(runs):
        more = runs[: k + 1]
        assert (
            sum(len(r) for r in more) > policy.max_messages
            or sum(message_chars(m) for r in more for m in r) > policy.max_chars
        )


@given(_runs, _policy)
def test_an_oldest_run_the_reader_may_have_cut_is_never_sent(
    runs: list[list[Message]], policy: ContextPolicy
) -> None:
    cut = fit_context(runs, policy, complete=False)
    assert cut == fit_context(runs[:-1], policy, complete=True)


def test_a_policy_that_holds_everything_keeps_everything() -> None:
    runs = [
        [Message(role="user", content=f"q{i}"), Message(role="assistant", content="a")]
        for i in range(50)
    ]
    everything = ContextPolicy(max_messages=100_000, max_chars=50_000_000)
    assert fit_context(runs, everything, complete=True) == [m for r in reversed(runs) for m in r]


@pytest.mark.parametrize(
    "context",
    [
        {"max_messages": 1},
        {"max_messages": 100_001},
        {"max_chars": 999},
        {"max_chars": None},
        {"strategy": "compress"},
        {"strategy": "summarize", "summary_max_chars": 199},
        {"strategy": "summarize", "summary_max_chars": 200_001},
        {"strategy": "summarize", "summary_model": ""},
        {"max_messages": "many"},
        {"unknown": 1},
        "truncate",
    ],
)
def test_an_unusable_context_policy_fails_the_session_start_typed(context: Any) -> None:
    with pytest.raises(AsmError) as caught:
        decode_input(
            [{"agent_id": "a", "context": context}],
            SessionSpec,
            what="AgentSession",
            converter=data_converter.payload_converter,
        )
    assert caught.value.code == "validation_error"
    assert "context" in caught.value.message


@given(st.dictionaries(st.text(max_size=20), st.one_of(st.none(), st.integers(), st.text())))
def test_any_context_input_is_a_policy_or_a_validation_error(context: dict[str, Any]) -> None:
    try:
        spec = decode_input(
            [{"agent_id": "a", "context": context}],
            SessionSpec,
            what="AgentSession",
            converter=data_converter.payload_converter,
        )
    except AsmError as err:
        assert err.code == "validation_error"
    else:
        assert 2 <= spec.context.max_messages <= 100_000


@given(
    st.fixed_dictionaries(
        {"strategy": st.just("summarize")},
        optional={
            "summary_max_chars": st.one_of(st.integers(-10, 300_000), st.text(), st.none()),
            "summary_model": st.one_of(st.text(max_size=300), st.integers(), st.none()),
            "max_messages": st.integers(-5, 200_000),
        },
    )
)
def test_any_summarize_policy_is_in_range_or_a_validation_error(context: dict[str, Any]) -> None:
    try:
        spec = decode_input(
            [{"agent_id": "a", "context": context}],
            SessionSpec,
            what="AgentSession",
            converter=data_converter.payload_converter,
        )
    except AsmError as err:
        assert err.code == "validation_error"
        assert "context" in err.message
    else:
        assert spec.context.strategy == "summarize"
        assert 200 <= spec.context.summary_max_chars <= 200_000
        assert 2 <= spec.context.max_messages <= 100_000


def test_a_truncate_policy_sends_what_it_sent_before_summaries_existed() -> None:
    # A worker of the previous release forbids unknown fields: the summarize settings stay
    # out of a truncate policy's payload while they hold their defaults.
    policy = ContextPolicy(max_messages=400)
    assert policy.model_dump() == {
        "strategy": "truncate",
        "max_messages": 400,
        "max_chars": 400_000,
    }
    summarize = ContextPolicy(strategy="summarize", summary_max_chars=800)
    assert summarize.model_dump()["summary_max_chars"] == 800
