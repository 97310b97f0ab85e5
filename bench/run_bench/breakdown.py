"""Where a run's time goes: stage times from the event store and from Temporal histories."""

from __future__ import annotations

import statistics
import uuid
from typing import Any

from run_bench.bare import BenchParent
from run_bench.harness import Harness
from run_bench.history import event_type_counts, history_stages
from run_bench.stats import ms, wall


async def store_breakdown(
    h: Harness, sid: str, submits: list[tuple[str, float, float, float]]
) -> dict[str, Any]:
    """Median stage times (ms after the submit) from the stored events' ``created_at``."""
    events = await h.s.events(sid, limit=10_000)
    by_run: dict[str, dict[str, float]] = {}
    for e in events:
        if e.run_id is None:
            continue
        stamps = by_run.setdefault(e.run_id, {})
        stamps.setdefault(e.type.value, wall(e.created_at))  # first of each type
    stages: dict[str, list[float]] = {}
    for run_id, w0, w1, _dur in submits:
        stamps = by_run.get(run_id, {})
        for name in (
            "run_started",
            "message_sent",
            "message_streamed",
            "run_completed",
            "turn_completed",
        ):
            if name in stamps:
                stages.setdefault(f"{name}_ms", []).append(stamps[name] - w0)
        stages.setdefault("result_returned_ms", []).append(w1 - w0)
        if "turn_completed" in stamps:
            # > 0: the session was still bookkeeping the run after the client had its
            # result (the next submit_run waits for the session lock meanwhile).
            stages.setdefault("turn_completed_after_result_ms", []).append(
                stamps["turn_completed"] - w1
            )
    return {k: ms(statistics.median(v)) for k, v in stages.items()}


async def history_breakdown(h: Harness, run_ids: list[str]) -> dict[str, Any]:
    """Median server-side stage times of AgentRun (and bare BenchChild) histories."""
    ours = [
        history_stages(await h.t.get_workflow_handle(f"run-{r}").fetch_history()) for r in run_ids
    ]
    bare_ids = []
    for _ in range(len(run_ids)):
        wid = f"bench-parent-{uuid.uuid4().hex[:16]}"
        await h.t.execute_workflow(BenchParent.run, "x", id=wid, task_queue=h.bare_tq)
        bare_ids.append(wid)
    bare = [
        history_stages(await h.t.get_workflow_handle(f"{w}-child").fetch_history())
        for w in bare_ids
    ]
    parents = [history_stages(await h.t.get_workflow_handle(w).fetch_history()) for w in bare_ids]

    def med(rows: list[dict[str, float]]) -> dict[str, Any]:
        """Medians; ``*_s`` values become ``*_ms`` (offsets from the workflow's start)."""
        keys = sorted({k for r in rows for k in r})
        out: dict[str, Any] = {}
        for k in keys:
            m = statistics.median([r[k] for r in rows if k in r])
            if k.endswith("_s"):
                out[k.removesuffix("_s") + "_ms"] = ms(m)
            else:
                out[k] = m
        return out

    return {
        "n": len(run_ids),
        "agent_run": med(ours),
        "bare_child": med(bare),
        "bare_parent": med(parents),
        "agent_run_event_types": event_type_counts(
            await h.t.get_workflow_handle(f"run-{run_ids[-1]}").fetch_history()
        )
        if run_ids
        else {},
    }
