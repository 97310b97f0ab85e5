"""What a session shows the Temporal UI and visibility queries: one line and the search
attributes (``core.search_attributes`` defines the keys; the client lists sessions by them)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core import search_attributes
    from agent_session_manager.core.contract import SessionState


#: Patch: the session's attributes carry ``AsmCostMicros`` (its runs' cost). Decided in the
#: execution's first activation (``AgentSession.__init__``); histories from before it upsert
#: the attributes they always did, so they replay.
COST_LEDGER = "cost-ledger"


def show(state: SessionState, *, running: int, tags: list[str]) -> None:
    """Say where the session is: its current details and, when one changed, the attributes.

    Upserting only on a change keeps the history free of no-op search-attribute events. The
    cost rides in the same upsert as the token total: no extra command per run.
    """
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
    if workflow.patched(COST_LEDGER):
        pairs.append(search_attributes.COST_MICROS.value_set(state.cost_micros))
    if tags:
        pairs.append(search_attributes.TAGS.value_set(tags))
    current = workflow.info().typed_search_attributes
    if any(current.get(p.key) != p.value for p in pairs):
        workflow.upsert_search_attributes(pairs)


__all__ = ["COST_LEDGER", "show"]
