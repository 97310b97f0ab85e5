"""The Temporal context of a log record: which session, run, workflow and activity.

:class:`ContextFilter` adds ``session_id``, ``run_id``, ``workflow_id``, ``workflow_run_id``,
``workflow_type``, ``activity_id``, ``activity_type``, ``attempt``, ``task_queue`` and
``namespace`` where known: from the running activity (``activity.info()``) or workflow
(``workflow.info()``, or the ``temporal_workflow`` details Temporal's workflow logger adds),
and from :func:`log_context` (the provider activity binds the run's session there). Ids follow
the contract: ``session-<id>`` and ``run-<id>`` workflow ids give the session and run ids, a
run's parent workflow gives its session.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from temporalio import activity, workflow

CONTEXT_FIELDS = (
    "session_id",
    "run_id",
    "workflow_id",
    "workflow_run_id",
    "workflow_type",
    "activity_id",
    "activity_type",
    "attempt",
    "task_queue",
    "namespace",
)


_bound: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "asm_log_context", default=None
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``session_id``) to every record logged inside the block."""
    bound = {**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _bound.set(bound)
    try:
        yield
    finally:
        _bound.reset(token)


def _ids_from_workflow_id(workflow_id: str | None, out: dict[str, Any]) -> None:
    if not workflow_id:
        return
    if workflow_id.startswith("session-"):
        out.setdefault("session_id", workflow_id.removeprefix("session-"))
    elif workflow_id.startswith("run-"):
        out.setdefault("run_id", workflow_id.removeprefix("run-"))


def current_context() -> dict[str, Any]:
    """The Temporal context of the calling code (activity, workflow, or bound fields)."""
    out: dict[str, Any] = dict(_bound.get() or {})
    try:
        info = activity.info()
    except RuntimeError:
        info = None
    if info is not None:
        out.setdefault("activity_id", info.activity_id)
        out.setdefault("activity_type", info.activity_type)
        out.setdefault("attempt", info.attempt)
        out.setdefault("workflow_id", info.workflow_id)
        out.setdefault("workflow_run_id", info.workflow_run_id)
        out.setdefault("workflow_type", info.workflow_type)
        out.setdefault("task_queue", info.task_queue)
        out.setdefault("namespace", info.workflow_namespace)
        _ids_from_workflow_id(info.workflow_id, out)
        return out
    if workflow.in_workflow():
        try:
            winfo = workflow.info()
        except Exception:  # outside a workflow task (e.g. during sandbox import)
            return out
        out.setdefault("workflow_id", winfo.workflow_id)
        out.setdefault("workflow_run_id", winfo.run_id)
        out.setdefault("workflow_type", winfo.workflow_type)
        out.setdefault("attempt", winfo.attempt)
        out.setdefault("task_queue", winfo.task_queue)
        out.setdefault("namespace", winfo.namespace)
        _ids_from_workflow_id(winfo.workflow_id, out)
        if winfo.parent is not None:
            _ids_from_workflow_id(winfo.parent.workflow_id, out)
    return out


class ContextFilter(logging.Filter):
    """Put the Temporal context (see the module docstring) on each record as attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current_context()
        details = getattr(record, "temporal_workflow", None)
        if isinstance(details, dict):
            ctx.setdefault("workflow_id", details.get("workflow_id"))
            ctx.setdefault("workflow_run_id", details.get("run_id"))
            ctx.setdefault("workflow_type", details.get("workflow_type"))
            _ids_from_workflow_id(details.get("workflow_id"), ctx)
        details = getattr(record, "temporal_activity", None)
        if isinstance(details, dict):
            ctx.setdefault("activity_id", details.get("activity_id"))
            ctx.setdefault("activity_type", details.get("activity_type"))
            ctx.setdefault("attempt", details.get("attempt"))
            ctx.setdefault("workflow_id", details.get("workflow_id"))
            _ids_from_workflow_id(details.get("workflow_id"), ctx)
        for key in CONTEXT_FIELDS:
            value = ctx.get(key)
            if value is not None and getattr(record, key, None) is None:
                setattr(record, key, value)
        return True
