"""Tools for the worker subprocesses of the chaos tests (``ASM_TOOLS=["tests.chaos.tools:TOOLS"]``).

Each call appends ``start <n>`` and ``done <n>`` lines to the file named by
``ASM_TEST_TOOL_LOG``, so a test counts exactly how often a tool ran, across worker kills.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from agent_session_manager.activities.tools import tool


class Work(BaseModel):
    n: int
    sleep: float = 0.0


def _log(line: str) -> None:
    with open(os.environ["ASM_TEST_TOOL_LOG"], "a", encoding="utf-8") as f:
        f.write(line + "\n")


@tool(description="Do step n of the work", heartbeat_timeout_seconds=2, max_attempts=5)
async def work(args: Work) -> str:
    _log(f"start {args.n}")
    await asyncio.sleep(args.sleep)
    _log(f"done {args.n}")
    return f"step {args.n} done"


@tool(description="Remove a path", approval="ask")
async def remove(args: Work) -> str:
    _log(f"remove {args.n}")
    return "removed"


TOOLS = [work, remove]
