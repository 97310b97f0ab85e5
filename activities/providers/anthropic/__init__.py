"""The ``anthropic`` provider: the Messages API through the official SDK (see :mod:`._provider`)."""

from agent_session_manager.activities.providers.anthropic._provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
