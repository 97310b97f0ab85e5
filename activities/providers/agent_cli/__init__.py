"""What the agent-CLI providers (``codex``, ``claude-code``) share, in their module names.

* :mod:`._options` — :class:`AgentCliOptions`: ``working_directory`` (required, an existing
  directory), ``state_dir`` and ``model``.
* :mod:`._session` — :func:`session_state_dir`, the per-session home a CLI resumes from, and
  :func:`transcript`, the fallback when it cannot.
* :mod:`._process` — :func:`terminate_process_tree` (the one place a CLI's process tree is
  stopped), :data:`LINE_LIMIT` and :func:`strip_ansi` for its output.
"""

from agent_session_manager.activities.providers.agent_cli._options import AgentCliOptions
from agent_session_manager.activities.providers.agent_cli._process import (
    LINE_LIMIT,
    strip_ansi,
    terminate_process_tree,
)
from agent_session_manager.activities.providers.agent_cli._session import (
    session_state_dir,
    transcript,
)

__all__ = [
    "LINE_LIMIT",
    "AgentCliOptions",
    "session_state_dir",
    "strip_ansi",
    "terminate_process_tree",
    "transcript",
]
