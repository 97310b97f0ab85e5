"""The scripted ``mock`` provider (see :mod:`._provider`)."""

from agent_session_manager.activities.providers.mock._provider import MockProvider

__all__ = ["MockProvider"]
