"""Session continuity: a second run resumes the Claude Code session of the previous one.

The session id travels in the conversation: the assistant content the provider returns is
``[{"type": "text", …}, {"type": "claude_code_session", "session_id": …}]`` and the next run
finds the newest such block in ``request.history``. Claude Code keeps its transcript under
``$HOME/.claude/projects``, so ``HOME`` is a per-session directory on the worker
(``options.claude_home``, else ``<state_dir>/claude-code/<session_id>``). When the transcript
is not there (another worker, a wiped state dir), the run starts a new session whose prompt
carries a transcript of the history.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent_session_manager.activities.providers.agent_cli import session_state_dir
from agent_session_manager.activities.providers.claude_code._options import ClaudeCodeOptions
from agent_session_manager.core.contract import Message

SESSION_BLOCK = "claude_code_session"


def previous_session_id(history: list[Message]) -> str | None:
    """The Claude Code session id the newest earlier run recorded, if any."""
    for msg in reversed(history):
        if msg.role != "assistant" or isinstance(msg.content, str):
            continue
        for block in reversed(msg.content):
            if block.get("type") == SESSION_BLOCK and block.get("session_id"):
                return str(block["session_id"])
    return None


def claude_home_for(options: ClaudeCodeOptions, session_id: str) -> Path:
    """The session's ``HOME`` for the CLI (its transcripts persist here between runs)."""
    return session_state_dir(
        options, session_id, folder="claude-code", override=options.claude_home
    )


def has_transcript(home: Path, session_id: str) -> bool:
    """Whether this worker holds the transcript ``--resume`` would need."""
    if not re.fullmatch(r"[A-Za-z0-9-]+", session_id):
        return False
    return any((home / ".claude" / "projects").glob(f"*/{session_id}.jsonl"))
