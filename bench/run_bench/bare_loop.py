"""The bare agent loop's activities (``BenchLoop`` in :mod:`run_bench.bare`): each writes and
reads what its counterpart of ours does for ``bench/tools.py``'s mock scripts, no more.

* ``bench_loop_model``, one model call (ours: ``stream_provider`` with the mock provider):
  ``run_started`` (first call), the conversation read (``conversation_runs``, the default
  context policy), the run's transcript read (a later call), the first streamed delta with
  ``message_sent`` in one append (the text reply only: a ``tool_use`` reply streams nothing,
  and ours writes its events with the transcript), and the ledger row with the transcript and
  the call's remaining events (and ``run_completed`` on the last call) in one ``save_reply``.
  Not mirrored: the fleet limits' cooldown read (a feature of ours, not part
  of the work) and ``turn_completed`` (ours writes it in the session, once per run whatever
  its tool calls: it cancels out of every difference the benchmark reports).
* ``bench_loop_tool``, one tool call (ours: ``execute_tool``): ``tool_call_started`` and
  ``tool_call_completed``, in one append, the cheapest way to write those rows: a bare program
  that does not show a running tool live needs no more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from agent_session_manager.core.contract import (
    ContextPolicy,
    LifecycleRecord,
    Message,
    ProviderOutcome,
    RunSpec,
)
from agent_session_manager.core.events import EventDraft, EventType, activity_event_id
from agent_session_manager.core.ledger import LedgerEntry, UsageTotal
from agent_session_manager.core.lifecycle import completed_result, run_ended, run_started
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore

_USAGE = TokenUsage(input_tokens=1, output_tokens=1)
_PROMPT = Message(role="user", content="x")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _call_id(run_id: str, step: int) -> str:
    return f"toolu_{run_id[-12:]}_{step}"


class BareLoop:
    """The loop's two activities over one store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    @activity.defn(name="bench_loop_model")
    async def model(self, args: list[str]) -> str:
        """One model call: ``[session_id, run_id, turn, step, last]`` (``last``: "1" or "0")."""
        session_id, run_id, turn_s, step_s, last_s = args
        turn, step, last = int(turn_s), int(step_s), last_s == "1"
        spec = RunSpec(
            run_id=run_id,
            session_id=session_id,
            agent_id="bench",
            provider="mock",
            turn=turn,
            messages=[_PROMPT],
        )
        scope = run_id if step == 1 else f"{run_id}/m{step}"
        index = 0

        def draft(type: EventType, data: dict[str, Any]) -> EventDraft:
            nonlocal index
            index += 1
            return EventDraft(
                id=activity_event_id(scope, 1, index),
                session_id=session_id,
                run_id=run_id,
                attempt=1,
                type=type,
                data=data,
                provider="mock",
            )

        if step == 1:
            await self.store.record(run_started(spec, now=_now()))
            messages = [_PROMPT]
        else:
            saved = await self.store.run_messages(run_id)
            result = {"type": "tool_result", "tool_use_id": _call_id(run_id, step - 1)}
            messages = [*saved, Message(role="user", content=[{**result, "content": "ok"}])]
        if turn > 1:
            await self.store.conversation_runs(session_id, turn, ContextPolicy())
        sent = draft(EventType.MESSAGE_SENT, {"model": "mock-1", "turn": turn})
        if last:
            await self.store.append([sent, draft(EventType.MESSAGE_STREAMED, {"text": "ok"})])
            events = []
            content: Any = "ok"
        else:
            events = [sent]
            content = [{"type": "tool_use", "id": _call_id(run_id, step), "name": "noop"}]
        entry = LedgerEntry(
            run_id=run_id,
            step=step,
            attempt=1,
            session_id=session_id,
            agent_id="bench",
            provider="mock",
            model="mock-1",
            usage=_USAGE,
            outcome="completed",
            day=datetime.now(UTC).date().isoformat(),
        )
        events += [
            draft(EventType.TOKEN_USAGE_UPDATED, _USAGE.model_dump()),
            draft(EventType.MESSAGE_RECEIVED, {"text": "ok" if last else "", "content": content}),
        ]
        transcript = [*messages, Message(role="assistant", content=content)]
        ending = None
        if last:
            outcome = ProviderOutcome(output="ok", stop_reason="end_turn", usage=_USAGE, attempt=1)
            ended = completed_result(spec, outcome)

            def ending(_total: UsageTotal) -> LifecycleRecord:
                return run_ended(spec, ended, now=_now(), output="ok")

        # The ledger row, transcript, events (and the ending) in one transaction, like ours.
        await self.store.save_reply(
            session_id, run_id, turn, transcript, events, bill=entry, ending=ending
        )
        return run_id

    @activity.defn(name="bench_loop_tool")
    async def tool(self, args: list[str]) -> str:
        """One tool call: ``[session_id, run_id, step]`` (the model call that asked for it)."""
        session_id, run_id, step = args
        call_id = _call_id(run_id, int(step))
        scope = f"{run_id}/t{step}"
        drafts = [
            EventDraft(
                id=activity_event_id(scope, 1, index),
                session_id=session_id,
                run_id=run_id,
                attempt=1,
                type=type,
                data={"id": call_id, "name": "noop", "attempt": 1, **data},
                provider="mock",
            )
            for index, (type, data) in enumerate(
                [
                    (EventType.TOOL_CALL_STARTED, {"executor": "worker"}),
                    (EventType.TOOL_CALL_COMPLETED, {"output": "ok"}),
                ],
                start=1,
            )
        ]
        await self.store.append(drafts)
        return call_id
