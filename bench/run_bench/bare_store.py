"""The session-shaped bare program's one activity: it writes what one of our runs writes.

Same store, same settings, same rows: ``run_started``, one ``message_streamed``, the
conversation read (from turn 2), the run's messages with ``run_completed`` in one transaction,
and ``turn_completed`` with the session's row. So the comparison with ours is about what our
workflows and activities add around the writes, not about the writes themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from agent_session_manager.core.contract import (
    LifecycleRecord,
    Message,
    ProviderOutcome,
    RunSpec,
    SessionPatch,
)
from agent_session_manager.core.events import (
    EventDraft,
    EventType,
    activity_event_id,
    lifecycle_event_id,
)
from agent_session_manager.core.lifecycle import completed_result, run_ended, run_started
from agent_session_manager.core.status import SessionStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore

#: What the mock provider reports for the one-step ``ok`` script (the fields ours fills).
_USAGE = TokenUsage(input_tokens=1, output_tokens=1)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def session_created(session_id: str) -> LifecycleRecord:
    """The session row a bare session writes once, as ours does when it starts."""
    return LifecycleRecord(
        event_id=lifecycle_event_id(session_id, 1, EventType.SESSION_CREATED),
        session_id=session_id,
        type=EventType.SESSION_CREATED.value,
        data={"agent_id": "bench", "provider": "mock"},
        provider="mock",
        session_status=SessionStatus.ACTIVE,
        session_row=SessionPatch(agent_id="bench", provider="mock"),
    )


class BareStore:
    """The activity over one store (the harness's, or a worker process's own)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    @activity.defn(name="bench_store_run")
    async def run(self, args: list[str]) -> str:
        session_id, run_id, turn_s = args
        turn = int(turn_s)
        prompt = Message(role="user", content="hi")
        spec = RunSpec(
            run_id=run_id,
            session_id=session_id,
            agent_id="bench",
            provider="mock",
            turn=turn,
            messages=[prompt],
        )
        await self.store.record(run_started(spec, now=_now()))
        delta = EventDraft(
            id=activity_event_id(run_id, 1, 0),
            session_id=session_id,
            run_id=run_id,
            attempt=1,
            type=EventType.MESSAGE_STREAMED,
            data={"delta": "ok"},
            provider="mock",
        )
        await self.store.append([delta])
        if turn > 1:
            await self.store.conversation(session_id, before_turn=turn)
        outcome = ProviderOutcome(output="ok", stop_reason="end_turn", usage=_USAGE, attempt=1)
        ended = completed_result(spec, outcome)
        await self.store.save_messages(
            session_id,
            run_id,
            turn,
            [prompt, Message(role="assistant", content="ok")],
            record=run_ended(spec, ended, now=_now(), output="ok"),
        )
        await self.store.record(
            LifecycleRecord(
                event_id=lifecycle_event_id(session_id, turn + 1, EventType.TURN_COMPLETED),
                session_id=session_id,
                run_id=run_id,
                type=EventType.TURN_COMPLETED.value,
                data={"turn": turn, "status": "completed", "usage": _USAGE.model_dump()},
                provider="mock",
                session_row=SessionPatch(usage=_USAGE, run_count=turn),
            )
        )
        return run_id
