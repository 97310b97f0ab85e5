"""Provider discovery: the entry-point group is how every provider, built in or not, is found."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

import agent_session_manager.activities.providers as providers
from agent_session_manager.activities.providers import ENTRY_POINT_GROUP, discover
from agent_session_manager.activities.providers.anthropic import AnthropicProvider
from agent_session_manager.activities.providers.base import Provider
from agent_session_manager.activities.providers.claude_code import ClaudeCodeProvider
from agent_session_manager.activities.providers.codex import CodexProvider
from agent_session_manager.activities.providers.mock import MockProvider


def test_every_builtin_is_found_through_its_entry_point_under_its_package() -> None:
    found = discover()
    expected: dict[str, type[Any]] = {
        "mock": MockProvider,
        "anthropic": AnthropicProvider,
        "codex": CodexProvider,
        "claude-code": ClaudeCodeProvider,
    }
    for name, cls in expected.items():
        assert type(found[name]) is cls
        assert isinstance(found[name], Provider)


def test_a_broken_adapter_is_skipped_and_the_rest_still_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    installed = [
        EntryPoint("broken", "agent_session_manager.no_such_module:Nothing", ENTRY_POINT_GROUP),
        EntryPoint(
            "anthropic",
            "agent_session_manager.activities.providers.anthropic:AnthropicProvider",
            ENTRY_POINT_GROUP,
        ),
    ]

    def entry_points(group: str) -> list[EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return installed

    monkeypatch.setattr(providers, "entry_points", entry_points)
    found = discover()
    assert sorted(found) == ["anthropic", "mock"]  # mock: the checkout fallback
    assert "provider broken failed to load" in caplog.text
