"""Builders for event drafts with deterministic ids, like the activities make them."""

from __future__ import annotations

from agent_session_manager.core.events import EventDraft, EventType, activity_event_id


def run_of(session_id: str, name: str) -> str:
    """A run id unique to the session (event ids embed run ids and are globally unique)."""
    return f"{session_id}:{name}"


def deltas(
    session_id: str, run: str, n: int, *, attempt: int = 1, start: int = 0
) -> list[EventDraft]:
    """``n`` ``message_streamed`` drafts of run ``run_of(session_id, run)``'s attempt."""
    run_id = run_of(session_id, run)
    return [
        EventDraft(
            id=activity_event_id(run_id, attempt, i),
            session_id=session_id,
            run_id=run_id,
            attempt=attempt,
            type=EventType.MESSAGE_STREAMED,
            data={"text": f"chunk {i}", "index": i},
            provider="mock",
        )
        for i in range(start, start + n)
    ]


def lifecycle(session_id: str, counter: int, type_: EventType) -> EventDraft:
    """A session-scoped lifecycle draft (no run)."""
    return EventDraft(
        id=f"{session_id}/wf/{counter}/{type_.value}", session_id=session_id, type=type_
    )
