"""The worker's price table and budgets from the environment: defaults, overrides, typed
errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_session_manager.core.budget import Budget
from agent_session_manager.core.errors import ValidationError
from agent_session_manager.core.prices import default_prices
from agent_session_manager.worker.settings import Settings, price_table


def test_no_configuration_means_the_shipped_prices_and_no_budgets() -> None:
    settings = Settings(prices_file=None, budgets=None)
    assert price_table(settings) == default_prices()
    policy = settings.budget_policy()
    assert policy.session is None and not policy.agents and not policy.tenants


def test_a_prices_file_is_merged_over_the_shipped_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"version": "ours-3", "models": {"house-model": {"input": "1", "output": "2"}}}'
    )
    table = price_table(Settings(prices_file=str(path)))
    assert table.version == "ours-3"
    assert table.price("house-model") is not None
    assert table.price("claude-sonnet-4-6") is not None


def test_an_unreadable_prices_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        price_table(Settings(prices_file=str(tmp_path / "missing.json")))
    assert "ASM_PRICES_FILE" in err.value.message


def test_budgets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_BUDGETS", '{"agents": {"*": {"cost_micros": 5000000}}}')
    assert Settings().budget_policy().agent("anyone") == Budget(cost_micros=5_000_000)
    monkeypatch.setenv("ASM_BUDGETS", '{"agents": {"*": {"cost_micros": -1}}}')
    with pytest.raises(ValidationError) as err:
        Settings().budget_policy()
    assert err.value.code == "validation_error" and "ASM_BUDGETS" in err.value.message
    monkeypatch.setenv("ASM_BUDGETS", "   ")
    assert Settings().budget_policy().session is None  # blank is unset
