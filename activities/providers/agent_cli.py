"""Running agent CLIs as child processes: what the ``codex`` and ``claude-code`` providers share.

* **Options** — :class:`AgentCliOptions`: the ``working_directory`` (required, an existing
  directory), ``state_dir`` and ``model`` every CLI provider takes.
* **Per-session state folders** — :func:`state_root` and :func:`session_state_dir`: a CLI
  keeps its session (Codex's thread rollouts, Claude Code's transcripts) under a home folder
  on the worker, one per session, so the next run of the session can resume it.
* **Process-tree termination** — :func:`terminate_process_tree`: a CLI is started with
  ``start_new_session=True``; on cancel or failure its group *and* every descendant that
  left the group (commands in their own PTY sessions), found with ``psutil``, are
  signalled, then reaped.
* **Transcript fallback** — :func:`transcript`: when a session cannot be resumed on this
  worker, the earlier turns travel as text in the new session's first prompt.
* Output hygiene — :data:`LINE_LIMIT` for the stdout ``StreamReader`` and :func:`strip_ansi`
  for the stderr tail kept for error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from agent_session_manager.core.contract import Message

#: SIGTERM → SIGKILL grace for the process group: with a provider's interrupt budget it must
#: stay well inside the 2 s a cancelled run may take to stop.
TERM_GRACE_S = 0.5
#: One stdout line is one protocol message, and a message can repeat a whole tool output
#: (Codex's ``turn/completed``, Claude Code's tool results): the ``StreamReader`` limit
#: must exceed it, or the reader fails with ``LimitOverrunError`` mid-turn.
LINE_LIMIT = 64 * 1024 * 1024

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- options -------------------------------------------------------------------------------


class AgentCliOptions(BaseModel):
    """The ``provider_options`` every agent CLI takes; each provider's model extends it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    working_directory: Path
    """Required; must be an existing directory (a retry would meet the same directory)."""
    state_dir: str | None = None
    """Root of the sessions' CLI homes; else ``$XDG_STATE_HOME/agent-session-manager``."""
    model: str | None = None
    """Else the run's model, else the CLI's own default."""

    @model_validator(mode="before")
    @classmethod
    def _none_is_unset(cls, data: Any) -> Any:
        # A JSON null in provider_options means "use the default", as it always has.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @field_validator("working_directory", mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        if not str(value).strip():
            raise ValueError("required: the directory the agent works in")
        return Path(str(value)).expanduser()

    @field_validator("working_directory")
    @classmethod
    def _a_directory(cls, path: Path) -> Path:
        if not path.exists():
            raise ValueError(f"{str(path)!r} does not exist")
        if not path.is_dir():
            raise ValueError(f"{str(path)!r} is not a directory")
        return path.resolve()


# --- per-session state ---------------------------------------------------------------------


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


# --- the child process ---------------------------------------------------------------------


def strip_ansi(raw: bytes) -> str:
    """A stderr line as plain text (colour codes removed, trailing whitespace trimmed)."""
    return _ANSI.sub("", raw.decode(errors="replace")).rstrip()


def _descendants(pid: int) -> set[psutil.Process]:
    """Every live descendant of ``pid`` (none once it is gone)."""
    try:
        return set(psutil.Process(pid).children(recursive=True))
    except psutil.Error:  # gone already, or not ours to look at
        return set()


def _signal_tree(pid: int, tree: set[psutil.Process], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the process was started with start_new_session=True
    for child in tree:
        # psutil checks the pid still names the process it found: never a reused pid.
        with contextlib.suppress(psutil.Error):
            child.send_signal(sig)


async def terminate_process_tree(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group and all descendants, SIGKILL after a grace, reap.

    Descendants are collected before the first signal: the CLI runs commands in their own PTY
    sessions, outside its process group, and once it dies they are orphans no longer found
    under it. They are collected again before SIGKILL, for any started during the grace.
    """
    tree = _descendants(proc.pid)
    if proc.returncode is None or tree:
        _signal_tree(proc.pid, tree, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), TERM_GRACE_S)
        _signal_tree(proc.pid, tree | _descendants(proc.pid), signal.SIGKILL)
    await proc.wait()
