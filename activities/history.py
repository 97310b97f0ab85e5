"""The earlier conversation a run sends its model, under the session's context policy.

``truncate``: the newest whole runs that fit the policy (:func:`core.context.fit_context`).

``summarize``: the same window, led by one message summarizing the runs it no longer holds.
A summary covers every counting run below its ``through_turn`` and is stored once per
``(session, through_turn)`` (``asm_summaries``): a retried attempt and the next turns find it
and send it again instead of paying for another. When the window has dropped runs the stored
summary does not cover, the run asks its own provider (or ``summary_model``) for a new one
before its model call: the previous summary plus the runs between it and the new
``through_turn``, chosen so the runs behind the new summary fill only half the window
(:func:`core.context.summary_room`), which leaves room for the next turns: a session pays
for one summary about every half window of turns, not every turn.

The summary call is billed as the run's step 0 (:mod:`activities.ledger`), before its model
call; its events are not the run's (a follower sees the run's reply, not the summary stream).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agent_session_manager.activities.ledger import Ledger
from agent_session_manager.activities.providers.base import Provider, ProviderRequest
from agent_session_manager.activities.store_outage import StoreOutage
from agent_session_manager.core.context import fit_runs, summary_room
from agent_session_manager.core.contract import ContextPolicy, Message, RunSpec
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.ledger import LedgerEntry
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.observability.cost import record_attempt
from agent_session_manager.store import EventStore, SavedRun, Summary

#: How many runs' conversations a worker keeps for their agent loop's later model calls (a
#: run's is dropped when its loop ends; these bound what crashed or failed runs leave).
REMEMBERED_RUNS = 256
#: The ledger step of a run's summary call (its model calls are 1, 2, …).
SUMMARY_STEP = 0

#: What the summarizing model is told (the conversation to summarize is the user message).
SUMMARY_SYSTEM_PROMPT = (
    "You summarize the earlier part of a conversation between a user and an AI assistant, so "
    "the assistant can continue it without the full text. Keep the facts, decisions, names, "
    "numbers, open questions and the user's preferences; drop pleasantries. Write plain text, "
    "no preamble."
)

#: How the summary leads the window it is sent with.
SUMMARY_HEADER = "Summary of the earlier conversation (older turns are not included):\n"

#: Provider options that shape the run's reply, not a summary: tools, extended thinking (its
#: budget must stay below ``max_tokens``, which the summary sets), structured output, stops.
_REPLY_OPTIONS = frozenset(
    {"tools", "tool_choice", "thinking", "output_config", "stop_sequences", "container"}
)

#: The usage keys a provider reports in ``token_usage_updated`` (running totals).
_USAGE_KEYS = tuple(TokenUsage.model_fields)


@dataclass
class History:
    """The earlier conversation to send, and whether this attempt billed a summary for it."""

    messages: list[Message]
    summarized: bool = False


class _SummarySink:
    """Where the summary call's events go: nowhere but its usage (they are not the run's),
    and each one heartbeats (the attempt is busy, not stuck)."""

    def __init__(self, heartbeat: Callable[..., None]) -> None:
        self._heartbeat = heartbeat
        self.usage = TokenUsage()
        #: When the provider last sent anything (a silent one is given up on, as a run's is).
        self.last_progress = time.monotonic()

    async def emit(self, type: EventType, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        self.last_progress = time.monotonic()
        if type is EventType.TOKEN_USAGE_UPDATED and "budget" not in data:
            counts = {k: v for k in _USAGE_KEYS if isinstance(v := data.get(k), int) and v >= 0}
            if counts:
                self.usage = self.usage.model_copy(update=counts)
        self._heartbeat()

    async def flush(self) -> None:
        self._heartbeat()


def _transcript(runs: list[SavedRun]) -> str:
    """Runs (oldest first) as the text the summarizing model reads."""
    return "\n\n".join(
        f"{m.role}: {text}" for run in runs for m in run.messages if (text := m.text())
    )


def _request_text(previous: Summary | None, runs: list[SavedRun], max_chars: int) -> str:
    parts = []
    if previous is not None:
        parts.append(f"Summary so far:\n{previous.text}")
    parts.append(f"Conversation to add to it:\n{_transcript(runs)}")
    parts.append(f"Write the updated summary in at most {max_chars} characters.")
    return "\n\n".join(parts)


@dataclass
class ConversationHistory:
    """Reads (and for ``summarize``, summarizes) the conversation before a run's turn."""

    store: EventStore
    ledger: Ledger
    secrets: dict[str, str]
    #: How often the summary call heartbeats while its provider is quiet (seconds).
    tick: float = 1.0
    #: Runs whose conversation this worker read last, newest last (see :meth:`read`).
    _sent: OrderedDict[str, list[Message]] = field(default_factory=OrderedDict)

    async def read(
        self,
        spec: RunSpec,
        provider: Provider,
        attempt: int,
        outage: StoreOutage,
        step: int = 1,
    ) -> History:
        """The conversation before ``spec.turn`` (nothing on turn 1: no read at all).

        A later model call of the agent loop (``step`` > 1) sends what the run's earlier calls
        sent, as this worker read it: the provider sees one stable prefix through the loop
        (what its prompt cache keys on), and the call reads nothing. On another worker, or
        once this one has forgotten the run (:data:`REMEMBERED_RUNS`), it reads it again.
        """
        if spec.turn == 1:
            return History([])
        if step > 1 and (sent := self._sent.get(spec.run_id)) is not None:
            return History(sent)
        history = await self._read(spec, provider, attempt, outage)
        if spec.tools or spec.client_tools:  # a run that may loop: its next call sends it too
            self._sent[spec.run_id] = history.messages
            self._sent.move_to_end(spec.run_id)
            while len(self._sent) > REMEMBERED_RUNS:
                self._sent.popitem(last=False)
        return history

    def forget(self, run_id: str) -> None:
        """The run's loop has ended: no later call will send its conversation."""
        self._sent.pop(run_id, None)

    async def _read(
        self, spec: RunSpec, provider: Provider, attempt: int, outage: StoreOutage
    ) -> History:
        # The session's policy, or the default one for a run started before policies
        # existed: either way the read is windowed, never the whole session.
        policy = spec.context or ContextPolicy()
        runs = await outage.outlast(
            lambda: self.store.conversation_runs(spec.session_id, spec.turn, policy),
            "reading the conversation",
        )
        if policy.strategy == "truncate":
            return History([m for run in runs for m in run.messages])
        return await self._summarized(spec, provider, attempt, outage, policy, runs)

    async def _summarized(
        self,
        spec: RunSpec,
        provider: Provider,
        attempt: int,
        outage: StoreOutage,
        policy: ContextPolicy,
        window: list[SavedRun],
    ) -> History:
        oldest = window[0].turn if window else spec.turn
        previous = await outage.outlast(
            lambda: self.store.summary(spec.session_id, spec.turn), "reading the summary"
        )
        covered = previous.through_turn if previous is not None else 1
        if oldest <= covered or not await self._dropped(spec, outage, covered, oldest):
            # Nothing the window left out is missing from the stored summary (if any).
            return History(_with(previous, [r for r in window if r.turn >= covered]))
        # The runs behind the new summary fill half the window: the next turns fit behind it.
        newest_first = window[::-1]
        behind = newest_first[
            : fit_runs([r.messages for r in newest_first], summary_room(policy), complete=True)
        ]
        # A newest run larger than half the window is still sent (if the window held it).
        through = behind[-1].turn if behind else (window[-1].turn if window else spec.turn)
        # Bounded: the summarizing model reads at most twice the window of older runs (the
        # runs behind the last summary and those dropped since: no more, turn by turn).
        wider = policy.model_copy(
            update={"max_messages": 2 * policy.max_messages, "max_chars": 2 * policy.max_chars}
        )
        older = await outage.outlast(
            lambda: self.store.older_runs(spec.session_id, through, wider.max_messages + 1),
            "reading the turns to summarize",
        )
        fitted = older[: fit_runs([r.messages for r in older], wider, complete=True)]
        to_add = [r for r in fitted[::-1] if r.turn >= covered]
        summary = await self._summarize(
            spec, provider, attempt, outage, policy, previous, to_add, through
        )
        return History(_with(summary, [r for r in window if r.turn >= through]), summarized=True)

    async def _dropped(self, spec: RunSpec, outage: StoreOutage, covered: int, oldest: int) -> bool:
        """Whether a counting run between ``covered`` and ``oldest`` exists (the window left
        it out and no summary holds it)."""
        # One message tells (its run may be cut short: only its turn matters).
        newest = await outage.outlast(
            lambda: self.store.older_runs(spec.session_id, oldest, 1, whole=False),
            "reading older turns",
        )
        return bool(newest) and newest[0].turn >= covered

    async def _summarize(
        self,
        spec: RunSpec,
        provider: Provider,
        attempt: int,
        outage: StoreOutage,
        policy: ContextPolicy,
        previous: Summary | None,
        runs: list[SavedRun],
        through: int,
    ) -> Summary:
        """The summary through ``through``: the stored one (an earlier attempt's), else a
        new one from the provider, billed as step 0 and stored."""
        stored = await outage.outlast(
            lambda: self.store.summary(spec.session_id, through), "reading the summary"
        )
        if stored is not None and stored.through_turn == through:
            return stored
        model = policy.summary_model or spec.model or provider.default_model
        request = ProviderRequest(
            session_id=spec.session_id,
            run_id=spec.run_id,
            attempt=attempt,
            turn=spec.turn,
            model=model,
            system_prompt=SUMMARY_SYSTEM_PROMPT,
            history=[],
            messages=[
                Message(
                    role="user",
                    content=_request_text(previous, runs, policy.summary_max_chars),
                )
            ],
            # About four characters a token: room for the summary asked for, not more.
            options={
                **{k: v for k, v in spec.provider_options.items() if k not in _REPLY_OPTIONS},
                "max_tokens": policy.summary_max_chars // 3 + 64,
            },
            mock=spec.mock.summary if spec.mock is not None else None,
            secrets=self.secrets,
            step=SUMMARY_STEP,
        )
        sink = _SummarySink(outage.heartbeat)
        bill = self.ledger.open(spec, SUMMARY_STEP, attempt, model, self.secrets)
        try:
            result = await self._call(
                provider.stream(request, sink), sink, outage, spec.heartbeat_timeout_seconds
            )
        except asyncio.CancelledError:
            entry = bill.entry("cancelled", sink.usage, error_code="cancelled")
            await asyncio.shield(self._bill(entry, outage))
            raise
        except Exception as exc:  # the attempt fails with it (activities.provider)
            code = exc.code if isinstance(exc, AsmError) else "internal_error"
            await self._bill(bill.entry("failed", sink.usage, error_code=code), outage)
            raise
        await self._bill(bill.entry("completed", result.usage, model=result.model), outage)
        text = (result.text or "").strip()[: policy.summary_max_chars] or "(empty summary)"
        return await outage.outlast(
            lambda: self.store.save_summary(spec.session_id, Summary(through, text), spec.run_id),
            "storing the summary",
        )

    async def _call(
        self, work: Awaitable[Any], sink: _SummarySink, outage: StoreOutage, silence_limit: float
    ) -> Any:
        """Await the provider, heartbeating while it is quiet; ``provider_timeout`` when it
        sends nothing for ``silence_limit`` seconds (the run's own call has the same limit)."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.tick)
                if done:
                    return task.result()
                if time.monotonic() - sink.last_progress > silence_limit:
                    raise error(
                        "provider_timeout",
                        f"the provider sent nothing for {silence_limit:g}s while summarizing",
                        details={"silence_seconds": silence_limit},
                    )
                outage.heartbeat()
        finally:
            if not task.done():  # cancelled: stop the provider and wait for it to let go
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _bill(self, entry: LedgerEntry, outage: StoreOutage) -> None:
        record_attempt(entry)
        await outage.outlast(
            lambda: self.ledger.store.bill(entry, alone=False), "billing the summary"
        )


def _with(summary: Summary | None, runs: list[SavedRun]) -> list[Message]:
    """``runs``' messages, led by ``summary`` as a user message."""
    messages = [m for run in runs for m in run.messages]
    if summary is None:
        return messages
    return [Message(role="user", content=SUMMARY_HEADER + summary.text), *messages]


__all__ = ["SUMMARY_STEP", "ConversationHistory", "History"]
