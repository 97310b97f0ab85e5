"""Session continuity: a second run resumes the same Codex thread.

The model then sees the earlier turns' real items (reasoning, commands and their output,
patches), not a text summary. Two things make that possible without a store API change:

* the thread id travels in the conversation: the assistant content the provider returns is
  ``[{"type": "text", …}, {"type": "codex_thread", "thread_id": …}]`` and the next run finds
  the newest ``codex_thread`` block in ``request.history`` (only this provider ever sees these
  blocks: a session has one provider);
* the thread's rollout lives in a per-session ``CODEX_HOME`` on the worker
  (``options.codex_home``, else ``<state_dir>/codex/<session_id>``). The config in it is
  rewritten every run.

If the thread cannot be resumed (the run landed on another worker, the home was wiped), the
provider starts a new thread whose first input is a transcript of the history.
"""

from __future__ import annotations

from pathlib import Path

from agent_session_manager.activities.providers.agent_cli import session_state_dir
from agent_session_manager.activities.providers.codex._options import CodexOptions
from agent_session_manager.core.contract import Message

THREAD_BLOCK = "codex_thread"


def previous_thread_id(history: list[Message]) -> str | None:
    """The thread id the newest earlier run of this session recorded, if any."""
    for msg in reversed(history):
        if msg.role != "assistant" or isinstance(msg.content, str):
            continue
        for block in reversed(msg.content):
            if block.get("type") == THREAD_BLOCK and block.get("thread_id"):
                return str(block["thread_id"])
    return None


def codex_home_for(options: CodexOptions, session_id: str) -> Path:
    """The session's ``CODEX_HOME`` (threads persist here between runs)."""
    return session_state_dir(options, session_id, folder="codex", override=options.codex_home)
