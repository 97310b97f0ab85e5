"""The agent-CLI process helper: cancelling a CLI stops its whole process tree."""

from __future__ import annotations

import asyncio
import os
import time

import psutil

from agent_session_manager.activities.providers.agent_cli import terminate_process_tree

#: A CLI whose command left its process group (as Codex's PTY sessions do) and ignores SIGTERM.
#: (An ignored signal stays ignored across exec.)
_CLI = "setsid sh -c 'trap \"\" TERM; exec sleep 1000' & wait"


async def test_terminate_kills_descendants_outside_the_group_even_if_they_ignore_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec("sh", "-c", _CLI, start_new_session=True)
    deadline = time.monotonic() + 10
    escaped: list[psutil.Process] = []
    while not escaped:
        assert time.monotonic() < deadline, "the command never left the group"
        await asyncio.sleep(0.05)
        escaped = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if os.getsid(p.pid) != os.getsid(proc.pid)
        ]

    started = time.monotonic()
    await terminate_process_tree(proc)

    assert time.monotonic() - started < 2.0
    assert proc.returncode is not None
    # SIGKILL is delivered at once; the orphan may linger as a zombie of whoever adopted it.
    for _ in range(50):
        if not any(_alive(p) for p in escaped):
            break
        await asyncio.sleep(0.02)
    assert [p for p in escaped if _alive(p)] == []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
