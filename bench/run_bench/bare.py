"""Bare Temporal, the baselines our runs are compared to.

* ``BenchParent`` → ``BenchChild`` → one no-op activity: a *new parent per run* (the first
  baseline; it pays a workflow start per run, which sessions do not).
* ``BenchSession`` → ``BenchRun`` → ``bench_store_run``: built the way sessions are. One
  long-lived parent receives a ``run`` update, starts a child running one activity that writes
  the same rows to the same store as one of our runs (``run_bench/bare_store.py``), returns the
  child's id, and the caller waits on the child. The parent awaits each child's end (as our
  session settles its runs) and ends on the ``end`` signal.
* ``BenchLoop`` → ``bench_loop_model`` → (``bench_loop_tool`` → ``bench_loop_model``) per tool: the
  agent loop of one run, each activity writing what its counterpart of ours writes
  (``run_bench/bare_loop.py``).

Kept apart from everything else: the workflow sandbox re-imports this module for every
``BenchParent``/``BenchChild`` instance (as it re-imports workflows/agent_*.py for ours), so it
imports nothing but temporalio and costs what importing a small workflow module costs.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def bench_noop(arg: str) -> str:
    """Does nothing: the bare-Temporal counterpart of the provider activity."""
    return arg


@workflow.defn(name="BenchChild")
class BenchChild:
    """Runs one no-op activity (the counterpart of ``AgentRun``)."""

    @workflow.run
    async def run(self, arg: str) -> str:
        return await workflow.execute_activity(
            bench_noop, arg, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BenchParent")
class BenchParent:
    """Starts one child and returns its result (the counterpart of ``AgentSession``)."""

    @workflow.run
    async def run(self, arg: str) -> str:
        return await workflow.execute_child_workflow(
            BenchChild.run, arg, id=f"{workflow.info().workflow_id}-child"
        )


@workflow.defn(name="BenchActivities")
class BenchActivities:
    """Runs ``count`` no-op activities one after another (the agent loop's counterpart)."""

    @workflow.run
    async def run(self, count: int) -> int:
        for n in range(count):
            await workflow.execute_activity(
                bench_noop, str(n), start_to_close_timeout=timedelta(seconds=30)
            )
        return count


@workflow.defn(name="BenchLoop")
class BenchLoop:
    """One run's agent loop: a model call, then a tool call and a model call per tool
    (the counterpart of ``AgentRun`` with tools)."""

    @workflow.run
    async def run(self, args: list[str]) -> int:
        session_id, run_id, turn, tools = args
        calls = int(tools) + 1
        for step in range(1, calls + 1):
            if step > 1:
                await workflow.execute_activity(
                    "bench_loop_tool",
                    [session_id, run_id, str(step - 1)],
                    start_to_close_timeout=timedelta(seconds=30),
                )
            await workflow.execute_activity(
                "bench_loop_model",
                [session_id, run_id, turn, str(step), "1" if step == calls else "0"],
                start_to_close_timeout=timedelta(seconds=30),
            )
        return calls


@workflow.defn(name="BenchRun")
class BenchRun:
    """Runs the activity that writes one run's rows (the counterpart of ``AgentRun``)."""

    @workflow.run
    async def run(self, args: list[str]) -> str:
        return str(
            await workflow.execute_activity(
                "bench_store_run", args, start_to_close_timeout=timedelta(seconds=30)
            )
        )


@workflow.defn(name="BenchSession")
class BenchSession:
    """A long-lived parent: each ``run`` update starts one child (the counterpart of
    ``AgentSession``); the caller waits on the child by the id the update returns."""

    def __init__(self) -> None:
        self._turn = 0
        self._ended = False
        self._children: set[asyncio.Task[str]] = set()

    @workflow.run
    async def run(self, session_id: str) -> int:
        await workflow.wait_condition(lambda: self._ended and not self._children)
        return self._turn

    @workflow.update(name="run")
    async def run_update(self, session_id: str) -> str:
        self._turn += 1
        child_id = f"{workflow.info().workflow_id}-run-{self._turn}"
        handle = await workflow.start_child_workflow(
            BenchRun.run, [session_id, child_id, str(self._turn)], id=child_id
        )
        task: asyncio.Task[str] = asyncio.ensure_future(handle)
        self._children.add(task)
        task.add_done_callback(self._children.discard)
        return child_id

    @workflow.signal(name="end")
    def end(self) -> None:
        self._ended = True
