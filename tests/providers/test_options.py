"""Each provider reads its ``provider_options`` through one pydantic model; a bad option is
``invalid_input`` naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_session_manager.activities.providers._options import parse_options
from agent_session_manager.activities.providers.anthropic._options import AnthropicOptions
from agent_session_manager.activities.providers.claude_code._options import ClaudeCodeOptions
from agent_session_manager.activities.providers.codex._options import CodexOptions
from agent_session_manager.core.errors import AsmError


def test_anthropic_passes_the_api_options_through_and_ignores_the_rest() -> None:
    options = parse_options(
        AnthropicOptions,
        {"tools": [{"name": "t"}], "temperature": 0.2, "max_tokens": 64, "other": 1},
        "anthropic",
    )
    assert options.max_tokens == 64
    assert options.request_params() == {"tools": [{"name": "t"}]}
    assert options.body_params() == {"temperature": 0.2}


@pytest.mark.parametrize("value", ["soon", 0, -1, float("inf"), None])
def test_anthropic_timeout_must_be_a_positive_finite_number(value: Any) -> None:
    with pytest.raises(AsmError) as caught:
        parse_options(AnthropicOptions, {"read_timeout": value}, "anthropic")
    assert caught.value.code == "invalid_input"
    assert caught.value.retryable is False
    assert caught.value.details == {"provider": "anthropic", "option": "read_timeout"}
    assert "provider_options.read_timeout" in caught.value.message


def test_codex_null_means_the_default_and_sandbox_mode_is_an_alias(tmp_path: Path) -> None:
    options = parse_options(
        CodexOptions,
        {
            "working_directory": str(tmp_path),
            "sandbox": None,
            "sandbox_mode": "read-only",
            "approval_policy": None,
            "stream_idle_timeout_seconds": 0.0001,
        },
        "codex",
    )
    assert options.working_directory == tmp_path.resolve()
    assert options.sandbox == "read-only"
    assert options.approval_policy == "never"
    assert options.approval_decision == "decline"
    assert options.stream_idle_timeout_ms() == 1


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"working_directory": None}, "working_directory"),
        ({"working_directory": " "}, "working_directory"),
        ({"working_directory": "/nonexistent/dir"}, "does not exist"),
        ({"sandbox": "yolo"}, "sandbox"),
        ({"approval_decision": "maybe"}, "approval_decision"),
        ({"stream_idle_timeout_seconds": "soon"}, "stream_idle_timeout_seconds"),
    ],
)
def test_codex_bad_options_are_invalid_input(
    tmp_path: Path, options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(AsmError) as caught:
        parse_options(CodexOptions, {"working_directory": str(tmp_path), **options}, "codex")
    assert caught.value.code == "invalid_input"
    assert fragment in caught.value.message


def test_a_file_is_not_a_working_directory(tmp_path: Path) -> None:
    file = tmp_path / "f.txt"
    file.write_text("x")
    with pytest.raises(AsmError, match="is not a directory"):
        parse_options(CodexOptions, {"working_directory": str(file)}, "codex")


def test_claude_code_tool_lists_take_a_list_or_a_comma_separated_string(tmp_path: Path) -> None:
    options = parse_options(
        ClaudeCodeOptions,
        {
            "working_directory": str(tmp_path),
            "allowed_tools": "Bash, Read,,",
            "disallowed_tools": [" WebFetch "],
            "api_timeout_seconds": 2.5,
        },
        "claude-code",
    )
    assert options.allowed_tools == ["Bash", "Read"]
    assert options.disallowed_tools == ["WebFetch"]
    assert options.api_timeout_ms() == 2500


@pytest.mark.parametrize("max_turns", [0, True, 2.5, "3"])
def test_claude_code_max_turns_must_be_a_positive_integer(tmp_path: Path, max_turns: Any) -> None:
    with pytest.raises(AsmError) as caught:
        parse_options(
            ClaudeCodeOptions,
            {"working_directory": str(tmp_path), "max_turns": max_turns},
            "claude-code",
        )
    assert caught.value.code == "invalid_input"
    assert caught.value.details["option"] == "max_turns"
