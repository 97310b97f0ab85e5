"""``ASM_LIMITS`` / ``ASM_LIMITS_FILE`` / ``ASM_BUDGETS`` through the worker's settings (what
``serve`` and every CLI command read): kept as text until used, then one loader's typed error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.core.budget import Budget, BudgetPolicy
from agent_session_manager.core.errors import ValidationError
from agent_session_manager.core.limits import Limits
from agent_session_manager.worker.settings import Settings


def test_limits_and_budgets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_LIMITS", '{"max_runs": 4, "session_overflow": "queue"}')
    monkeypatch.setenv("ASM_BUDGETS", '{"session": {"tokens": 1000}}')
    settings = Settings()
    assert settings.fleet_limits() == Limits(max_runs=4, session_overflow="queue")
    assert settings.budget_policy() == BudgetPolicy(session=Budget(tokens=1000))


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_variables_are_none(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    for name in ("ASM_LIMITS", "ASM_LIMITS_FILE", "ASM_BUDGETS"):
        monkeypatch.setenv(name, blank)
    settings = Settings()
    assert settings.fleet_limits() == Limits()
    assert settings.budget_policy() == BudgetPolicy()


def test_a_bad_value_fails_only_what_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_LIMITS", "{nope")
    monkeypatch.setenv("ASM_BUDGETS", '{"agents": {"*": {"cost_micros": -1}}}')
    settings = Settings()  # every command reads the settings; this must not fail them all
    with pytest.raises(ValidationError) as limits_err:
        settings.fleet_limits()
    with pytest.raises(ValidationError) as budgets_err:
        settings.budget_policy()
    for err, name in ((limits_err, "ASM_LIMITS"), (budgets_err, "ASM_BUDGETS")):
        assert err.value.code == "validation_error"
        assert err.value.message.startswith(f"{name} is not valid: ")


def test_a_limits_file_wins_and_is_read_by_its_suffix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASM_LIMITS", '{"max_runs": 1}')
    toml, json_file = tmp_path / "l.toml", tmp_path / "l.json"
    toml.write_text("max_runs = 7\n[max_runs_per_provider]\nanthropic = 2\n")
    json_file.write_text('{"max_runs": 8}')
    monkeypatch.setenv("ASM_LIMITS_FILE", str(toml))
    assert Settings().fleet_limits() == Limits(max_runs=7, max_runs_per_provider={"anthropic": 2})
    monkeypatch.setenv("ASM_LIMITS_FILE", str(json_file))
    assert Settings().fleet_limits().max_runs == 8


def test_an_unreadable_limits_file_names_the_variable_and_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing, latin1 = tmp_path / "missing.toml", tmp_path / "latin1.json"
    latin1.write_bytes(b'{"max_runs": "\xff"}')
    for path in (missing, latin1):
        monkeypatch.setenv("ASM_LIMITS_FILE", str(path))
        with pytest.raises(ValidationError) as err:
            Settings().fleet_limits()
        assert err.value.code == "validation_error"
        assert f"ASM_LIMITS_FILE {str(path)!r}" in err.value.message


def test_models_given_in_code_are_used_as_they_are() -> None:
    limits, budgets = Limits(max_runs=2), BudgetPolicy(session=Budget(tokens=5))
    settings = Settings(limits=limits, budgets=budgets)
    assert settings.fleet_limits() is limits and settings.budget_policy() is budgets


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=120).filter(lambda t: "\x00" not in t))
def test_any_environment_text_is_limits_or_a_typed_error(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("ASM_LIMITS", text)
    monkeypatch.setenv("ASM_BUDGETS", text)
    settings = Settings()
    for read, name in (
        (settings.fleet_limits, "ASM_LIMITS"),
        (settings.budget_policy, "ASM_BUDGETS"),
    ):
        try:
            read()
        except ValidationError as err:
            assert err.code == "validation_error" and name in err.message
