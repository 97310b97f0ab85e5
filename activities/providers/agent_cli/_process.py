"""The CLI as a child process: its output lines, its stderr, and stopping its whole tree.

A CLI is started with ``start_new_session=True``; on cancel or failure its group *and* every
descendant that left the group (commands in their own PTY sessions), found with ``psutil``,
are signalled, then reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal

import psutil

#: SIGTERM → SIGKILL grace for the process group: with a provider's interrupt budget it must
#: stay well inside the 2 s a cancelled run may take to stop.
TERM_GRACE_S = 0.5
#: One stdout line is one protocol message, and a message can repeat a whole tool output
#: (Codex's ``turn/completed``, Claude Code's tool results): the ``StreamReader`` limit
#: must exceed it, or the reader fails with ``LimitOverrunError`` mid-turn.
LINE_LIMIT = 64 * 1024 * 1024

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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
