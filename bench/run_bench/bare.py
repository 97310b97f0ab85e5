"""Bare Temporal: parent → child → one no-op activity, the baseline our runs are compared to.

Kept apart from everything else: the workflow sandbox re-imports this module for every
``BenchParent``/``BenchChild`` instance (as it re-imports workflows/agent_*.py for ours), so it
imports nothing but temporalio and costs what importing a small workflow module costs.
"""

from __future__ import annotations

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
