"""The ``codex`` provider: the Codex CLI over ``app-server`` (see :mod:`._provider`)."""

from agent_session_manager.activities.providers.codex._provider import CodexProvider

__all__ = ["CodexProvider"]
