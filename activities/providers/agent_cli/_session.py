"""Per-session state on the worker, and the transcript fallback when it is not there.

A CLI keeps its session (Codex's thread rollouts, Claude Code's transcripts) under a home
folder on the worker, one per session, so the next run of the session can resume it. When a
session cannot be resumed on this worker, the earlier turns travel as text in the new
session's first prompt.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from agent_session_manager.activities.providers.agent_cli._options import AgentCliOptions
from agent_session_manager.core.contract import Message


def state_root(state_dir: str | None) -> Path:
    """Where sessions' CLI homes live: ``state_dir``, else the XDG state dir."""
    if state_dir:
        return Path(state_dir).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "agent-session-manager"


def session_state_dir(
    options: AgentCliOptions, session_id: str, *, folder: str, override: str | None
) -> Path:
    """One session's home for a CLI: ``override`` if set, else
    ``<state_root>/<folder>/<session id made path-safe>``."""
    if override:
        return Path(override).expanduser()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", session_id) or "session"
    return state_root(options.state_dir) / folder / safe


def transcript(history: list[Message]) -> str:
    """The earlier turns as text, for a new CLI session that cannot resume the old one."""
    lines = ["<conversation_so_far>"]
    for msg in history:
        text = msg.text().strip()
        if text:
            lines.append(f"[{msg.role}]\n{text}")
    lines.append("</conversation_so_far>")
    return "\n\n".join(lines)
