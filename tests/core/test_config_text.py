"""One loader for settings given as text: any text is the model or a ``validation_error``
naming where it came from; blank is the model's defaults."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.core.budget import BudgetPolicy, parse_budgets
from agent_session_manager.core.config_text import parse_config
from agent_session_manager.core.errors import ValidationError
from agent_session_manager.core.limits import Limits, parse_limits


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_blank_text_is_the_defaults(text: str | None) -> None:
    assert parse_limits(text, "ASM_LIMITS") == Limits()
    assert parse_budgets(text, "ASM_BUDGETS") == BudgetPolicy()


def test_json_and_toml_are_read_into_the_model() -> None:
    assert parse_limits('{"max_runs": 3}', "ASM_LIMITS").max_runs == 3
    assert parse_limits("max_runs = 3\n", "limits.toml", toml=True).max_runs == 3


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '"text"', '{"max_runs": -1}', '{"surprise": 1}', "[" * 100_000],
)
def test_bad_text_is_a_validation_error_naming_its_origin(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_limits(text, "ASM_LIMITS")
    assert err.value.code == "validation_error"
    assert err.value.message.startswith("ASM_LIMITS is not valid: ")
    assert "docs/limits.md" in err.value.message  # what to write instead
    assert err.value.details == {"origin": "ASM_LIMITS"}


def test_toml_syntax_errors_are_validation_errors_too() -> None:
    with pytest.raises(ValidationError) as err:
        parse_limits("max_runs = [", "ASM_LIMITS_FILE 'l.toml'", toml=True)
    assert "ASM_LIMITS_FILE 'l.toml'" in err.value.message


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
_limits_like = st.dictionaries(
    st.sampled_from(sorted(Limits.model_fields)) | st.text(max_size=8), _json, max_size=4
)


@given(st.text(max_size=200) | _json.map(json.dumps) | _limits_like.map(json.dumps))
def test_any_text_is_the_model_or_a_typed_error(text: str) -> None:
    for model, origin in ((Limits, "ASM_LIMITS"), (BudgetPolicy, "ASM_BUDGETS")):
        try:
            parsed = parse_config(model, text, origin, expected="JSON")
        except ValidationError as err:
            assert err.code == "validation_error"
            assert origin in err.message
            continue
        assert isinstance(parsed, model)
