"""What a session shows the Temporal UI and visibility queries: one line and the search
attributes (``core.search_attributes`` defines the keys; the client lists sessions by them).

Patch ``ui-truth``: the Temporal UI tells the truth about how a session and its runs ended. A
session cancelled by its ``cancel`` signal ends Canceled (it asks Temporal to cancel it, through
the ``request_cancel`` local activity: a new command), with the reason as the cancel request's
cause, as ``temporal workflow cancel --reason`` does; a run cancelled with a reason is asked to
cancel with that reason (its ``run_cancelled`` event and its error carry it); the current
details count every outcome. Decided in the first activation (``Execution.ui_truth``);
histories recorded before it (``tests/histories/before-ui-truth``) replay the old way.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core import search_attributes
    from agent_session_manager.core.contract import SessionState
    from agent_session_manager.core.status import RunStatus


UI_TRUTH = "ui-truth"

#: Patch: the session's attributes carry ``AsmCostMicros`` (its runs' cost). Decided in the
#: execution's first activation (``AgentSession.__init__``); histories from before it upsert
#: the attributes they always did, so they replay.
COST_LEDGER = "cost-ledger"


def details(state: SessionState, *, running: int, note: str | None = None) -> str:
    """The session's current details: status (and why, when it ended with a reason), then
    every run counted by how it ended, as the UI's one line about the session."""
    ended = ", ".join(
        f"{state.outcomes.get(status, 0)} {label}"
        for status, label in (
            (RunStatus.COMPLETED, "completed"),
            (RunStatus.FAILED, "failed"),
            (RunStatus.CANCELLED, "cancelled"),
            (RunStatus.TIMEOUT, "timed out"),
        )
    )
    why = f" ({note[:200]})" if note else ""
    return (
        f"{state.status.value}{why} · {state.run_count} run(s): {ended} · {running} running · "
        f"{len(state.queue)} queued · {state.usage.total_tokens} tokens"
    )


def show(
    state: SessionState,
    *,
    running: int,
    tags: list[str],
    counted: bool = False,
    note: str | None = None,
) -> None:
    """Say where the session is: its current details and, when one changed, the attributes.

    ``counted`` (patch ``ui-truth``): the details count every outcome and say why the session
    ended. Upserting only on a change keeps the history free of no-op search-attribute events.
    The per-run totals (``AsmTotalTokens``, ``AsmCostMicros``) go out as each run settles:
    "sessions that cost more than $1 today" must find a session that is still active.
    """
    if counted:
        workflow.set_current_details(details(state, running=running, note=note))
    else:
        workflow.set_current_details(
            f"{state.status.value} · {state.run_count} run(s) · {running} running · "
            f"{len(state.queue)} queued · {state.usage.total_tokens} tokens"
        )
    pairs: list[SearchAttributeUpdate[Any]] = [
        search_attributes.SESSION_ID.value_set(state.session_id),
        search_attributes.AGENT_ID.value_set(state.agent_id),
        search_attributes.PROVIDER.value_set(state.provider),
        search_attributes.STATUS.value_set(state.status.value),
        search_attributes.TOTAL_TOKENS.value_set(state.usage.total_tokens),
    ]
    # The cost rides in the same upsert as the token total: no extra command per run.
    if workflow.patched(COST_LEDGER):
        pairs.append(search_attributes.COST_MICROS.value_set(state.cost_micros))
    if tags:
        pairs.append(search_attributes.TAGS.value_set(tags))
    current = workflow.info().typed_search_attributes
    if any(current.get(p.key) != p.value for p in pairs):
        workflow.upsert_search_attributes(pairs)


__all__ = ["COST_LEDGER", "UI_TRUTH", "details", "show"]
