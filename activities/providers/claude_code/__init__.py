"""The ``claude-code`` provider: Claude Code via ``claude-agent-sdk`` (see :mod:`._provider`)."""

from agent_session_manager.activities.providers.claude_code._provider import ClaudeCodeProvider

__all__ = ["ClaudeCodeProvider"]
