"""The price table: shipped defaults, overrides, snapshot names, integer micro-dollar costs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.core.errors import ValidationError
from agent_session_manager.core.prices import (
    ModelPrice,
    PriceTable,
    cost_of,
    default_prices,
    parse_prices,
)
from agent_session_manager.core.usage import TokenUsage


def test_the_shipped_table_prices_sonnet_per_token_class() -> None:
    table = default_prices()
    usage = TokenUsage(
        input_tokens=1000,
        output_tokens=100,
        cache_creation_input_tokens=10,
        cache_read_input_tokens=1000,
    )
    # $3 / $15 / $3.75 / $0.30 per MTok = micro-dollars per token.
    assert cost_of(table, "claude-sonnet-4-6", usage) == 3000 + 1500 + 38 + 300
    assert cost_of(table, "claude-sonnet-4-5-20250929", usage) == 4838
    assert cost_of(table, "mock-1", usage) == 0


def test_an_unknown_model_has_no_price_not_a_zero_one() -> None:
    table = default_prices()
    assert cost_of(table, "claude-opus-4-7", TokenUsage(input_tokens=5)) is None
    assert cost_of(table, None, TokenUsage(input_tokens=5)) is None
    assert table.price("claude-sonnet-4-6-preview") is None


def test_an_override_adds_and_replaces_models_and_names_the_version() -> None:
    override = parse_prices(
        '{"version": "acme-7", "models": {"mock-1": {"input": "2", "output": "4"}}}', "test"
    )
    merged = default_prices().merged(override)
    assert merged.version == "acme-7"
    assert cost_of(merged, "mock-1", TokenUsage(input_tokens=10, output_tokens=1)) == 24
    assert merged.price("claude-sonnet-4-6") == default_prices().price("claude-sonnet-4-6")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"models": {}}',
        '{"version": "v", "models": {"m": {"input": "-1", "output": "1"}}}',
        '{"version": "v", "models": {"m": {"input": "1"}}}',
        '{"version": "v", "models": {"m": {"input": "1", "output": "1", "extra": 1}}}',
        '{"version": "has space", "models": {}}',
        '{"version": "v", "models": {"m": {"input": "NaN", "output": "1"}}}',
    ],
)
def test_a_bad_table_is_a_validation_error_naming_its_origin(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_prices(text, "prices.json")
    assert err.value.code == "validation_error"
    assert "prices.json" in err.value.message


@given(
    tokens=st.tuples(*(st.integers(0, 2**40) for _ in range(4))),
    prices=st.tuples(*(st.decimals(0, 1000, places=3, allow_nan=False) for _ in range(4))),
)
def test_cost_is_the_exact_sum_rounded_once(
    tokens: tuple[int, int, int, int], prices: tuple[Decimal, ...]
) -> None:
    price = ModelPrice(
        input=prices[0], output=prices[1], cache_write=prices[2], cache_read=prices[3]
    )
    usage = TokenUsage(
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cache_creation_input_tokens=tokens[2],
        cache_read_input_tokens=tokens[3],
    )
    exact = sum(t * p for t, p in zip(tokens, prices, strict=True))
    assert abs(price.cost_micros(usage) - exact) <= Decimal("0.5")
    assert price.cost_micros(usage) >= 0


@given(st.text(max_size=200))
def test_any_text_is_a_table_or_a_typed_error(text: str) -> None:
    try:
        table = parse_prices(text, "fuzz")
    except ValidationError as err:
        assert err.code == "validation_error"
    else:
        assert isinstance(table, PriceTable)
