"""Server-side stage times of one workflow execution, read from its history's event times."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import WorkflowHistory


def _ts(e: Any) -> float:
    return float(e.event_time.seconds + e.event_time.nanos / 1e9)


def history_stages(hist: WorkflowHistory) -> dict[str, float]:
    """Server-side stage durations (s) of one workflow execution, from its event times."""
    events = list(hist.events)
    if not events:
        return {}
    start = _ts(events[0])
    out: dict[str, float] = {"total_s": _ts(events[-1]) - start}
    tasks, task_time = 0, 0.0  # workflow tasks, and their time from scheduled to completed
    sched: float | None = None
    for e in events:
        kind = e.event_type
        if kind == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            sched = _ts(e)
        elif kind == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and sched is not None:
            tasks += 1
            task_time += _ts(e) - sched
            sched = None
    out["workflow_tasks"] = tasks
    out["workflow_task_time_s"] = task_time

    def first(kind: int) -> float | None:
        return next((_ts(e) - start for e in events if e.event_type == kind), None)

    marks = {
        "first_wft_completed_s": HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        "activity_scheduled_s": HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        "activity_started_s": HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        "activity_completed_s": HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        "child_initiated_s": HistoryEventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        "child_started_s": HistoryEventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        "child_completed_s": HistoryEventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        "signal_initiated_s": (
            HistoryEventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
        ),
    }
    for name, kind in marks.items():
        v = first(kind)
        if v is not None:
            out[name] = v
    return out


def event_type_counts(hist: WorkflowHistory) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in hist.events:
        name = HistoryEventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower()
        counts[name] = counts.get(name, 0) + 1
    return counts
