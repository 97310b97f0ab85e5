"""Content a caller sent inline above the limit leaves the session's payloads here.

``SessionClient`` stores a long prompt or system prompt itself and sends its reference. Any
other caller (the ``temporal`` CLI, another SDK) may send it inline, up to the contract's
input bound. The session then stores it once, through the ``store_content`` local activity
(whose input never enters history; its result, the reference, does), and from there on
carries only the reference: in each run's spec, in the queue, across continue-as-new. So the
content is in history once, in the caller's own start or update, instead of once per event
that carries it, and a child's input never approaches Temporal's 2 MB payload limit.

Sessions recorded before this did not store content: behind :data:`CONTENT_BY_REFERENCE`
they replay as they ran. Content within the limit changes nothing (no marker, no command).
Call these first thing in the activation that received the content (the start, the update).
A ``workflow.patched`` that first runs right after a local activity resolved can land in
another workflow task on replay than it did live (a query arriving during the local activity
makes the worker complete the task early), and replay then fails on the patch marker. So the
patches asked for after ``store_content`` (the run's ``run-evidence``, when the update starts
its run) are asked for here, before it: afterwards they are memoized, and record nothing.
"""

from __future__ import annotations

from temporalio import workflow

from agent_session_manager.workflows.lifecycle import LIFECYCLE_RETRY, LOCAL_TIMEOUT
from agent_session_manager.workflows.session_runs import RUN_EVIDENCE

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.content import ContentRef, travels_by_reference
    from agent_session_manager.core.contract import RunRequest, SessionSpec, StoreContent
    from agent_session_manager.core.protocol import STORE_CONTENT_ACTIVITY

#: Patch: inline content over the limit is stored and replaced by its reference.
CONTENT_BY_REFERENCE = "content-by-reference"


async def _store(content: str) -> ContentRef:
    # Retried like a lifecycle write: a store outage delays the session, never fails it.
    ref: ContentRef = await workflow.execute_local_activity(
        STORE_CONTENT_ACTIVITY,
        StoreContent(content=content),
        result_type=ContentRef,
        start_to_close_timeout=LOCAL_TIMEOUT,
        retry_policy=LIFECYCLE_RETRY,
    )
    return ref


async def spec_by_reference(spec: SessionSpec) -> None:
    """Store ``spec``'s system prompt if it is over the limit, and reference it instead.

    In place: the session's parts (runs, transitions) share this one spec object.
    """
    prompt = spec.system_prompt
    if prompt is None or not travels_by_reference(prompt):
        return
    if not workflow.patched(CONTENT_BY_REFERENCE):
        return
    spec.system_prompt_ref = await _store(prompt)
    spec.system_prompt = None


async def request_by_reference(request: RunRequest) -> RunRequest:
    """``request`` with a prompt over the limit stored and referenced."""
    prompt = request.prompt
    if prompt is None or not travels_by_reference(prompt):
        return request
    if not workflow.patched(CONTENT_BY_REFERENCE):
        return request
    workflow.patched(RUN_EVIDENCE)  # before the local activity: see the module docstring
    ref = await _store(prompt)
    return request.model_copy(update={"prompt": None, "prompt_ref": ref})


__all__ = ["CONTENT_BY_REFERENCE", "request_by_reference", "spec_by_reference"]
