"""TokenUsage: the four counts, their total, and accumulation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError as PydanticValidationError

from agent_session_manager.core.usage import TokenUsage


def test_total_adds_input_output_cache_creation_and_cache_read() -> None:
    usage = TokenUsage(
        input_tokens=1, output_tokens=2, cache_creation_input_tokens=3, cache_read_input_tokens=4
    )
    assert usage.total_tokens == 10


def test_plus_adds_every_count() -> None:
    a = TokenUsage(input_tokens=1, output_tokens=2)
    b = TokenUsage(cache_creation_input_tokens=3, cache_read_input_tokens=4, output_tokens=1)
    assert a + b == TokenUsage(
        input_tokens=1, output_tokens=3, cache_creation_input_tokens=3, cache_read_input_tokens=4
    )


def test_accumulate_sums_many_and_zero_for_none() -> None:
    assert TokenUsage.accumulate([]) == TokenUsage()
    parts = [TokenUsage(input_tokens=i) for i in range(5)]
    assert TokenUsage.accumulate(parts).input_tokens == 10


def test_adding_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        TokenUsage() + 1  # type: ignore[operator]


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(PydanticValidationError):
        TokenUsage(output_tokens=-1)


def test_the_total_is_serialized_and_ignored_on_the_way_back() -> None:
    usage = TokenUsage(input_tokens=2)
    dumped = usage.model_dump()
    assert dumped["total_tokens"] == 2
    assert TokenUsage.model_validate(dumped) == usage
