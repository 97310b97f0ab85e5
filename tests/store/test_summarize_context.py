"""The ``summarize`` context policy (``activities.history``) against a real store (SQLite and
PostgreSQL): the window led by a stored summary, one summary call per half window of turns,
none on a retried attempt or the next turn, each billed once as the run's step 0; the wire
request an Anthropic model receives for it (the wire-level fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent_session_manager.activities.history import (
    SUMMARY_HEADER,
    SUMMARY_STEP,
    SUMMARY_SYSTEM_PROMPT,
    ConversationHistory,
    History,
)
from agent_session_manager.activities.ledger import Ledger
from agent_session_manager.activities.providers.anthropic import AnthropicProvider
from agent_session_manager.activities.providers.base import Provider
from agent_session_manager.activities.providers.mock import MockProvider
from agent_session_manager.activities.store_outage import StoreOutage
from agent_session_manager.core.contract import ContextPolicy, Message, RunSpec
from agent_session_manager.core.errors import AsmError
from agent_session_manager.store import EventStore
from tests.fakes.anthropic_server import AnthropicFake, HttpError, Reply, Stall, Text
from tests.providers.anthropic_support import API_KEY

#: Two runs of two messages fill the window; a summary leaves one behind it.
POLICY = ContextPolicy(strategy="summarize", max_messages=4, summary_max_chars=300)


def _turn(n: int) -> list[Message]:
    return [
        Message(role="user", content=f"question {n}"),
        Message(role="assistant", content=f"answer {n}"),
    ]


def _spec(sid: str, turn: int, provider: str = "mock") -> RunSpec:
    return RunSpec(
        run_id=f"{sid}-t{turn}",
        session_id=sid,
        agent_id="agent-1",
        provider=provider,
        model="claude-sonnet-4-6" if provider == "anthropic" else None,
        turn=turn,
        messages=[Message(role="user", content=f"question {turn}")],
        context=POLICY,
        # The run's reply may think at length: the summary does not (and sets max_tokens).
        provider_options=(
            {"thinking": {"type": "enabled", "budget_tokens": 8000}, "max_tokens": 16000}
            if provider == "anthropic"
            else {}
        ),
    )


class _Beats:
    def __call__(self, *details: object) -> None:
        pass


async def _read(
    history: ConversationHistory, provider: Provider, spec: RunSpec, attempt: int = 1
) -> History:
    return await history.read(spec, provider, attempt, StoreOutage(_Beats()))


async def _summary_rows(store: EventStore, sid: str) -> list[tuple[str, str]]:
    return [
        (e.run_id, e.outcome) for e in await store.ledger(session_id=sid) if e.step == SUMMARY_STEP
    ]


async def test_the_window_is_led_by_a_summary_written_once_per_half_window(
    store: EventStore, sid: str
) -> None:
    history = ConversationHistory(store, Ledger(store), {})
    mock = MockProvider()
    sent: dict[int, History] = {}
    for turn in range(1, 13):
        spec = _spec(sid, turn)
        sent[turn] = await _read(history, mock, spec)
        # A retried attempt sends the same and pays for nothing more.
        rows = await _summary_rows(store, sid)
        again = await _read(history, mock, spec, attempt=2)
        assert again.messages == sent[turn].messages and not again.summarized
        assert await _summary_rows(store, sid) == rows
        await store.save_messages(sid, spec.run_id, turn, _turn(turn))
    # Turns 2-3 fit whole: no summary, nothing asked of the model.
    assert sent[3].messages == [*_turn(1), *_turn(2)] and not sent[3].summarized
    # Turn 4's window (turns 2-3) dropped turn 1: a summary through turn 3 leads turn 3.
    head, *rest = sent[4].messages
    assert head.role == "user" and str(head.content).startswith(SUMMARY_HEADER)
    assert rest == _turn(3) and sent[4].summarized
    assert "question 1" in str(head.content)  # the mock echoes what it was asked to summarize
    # Turn 5 reuses it (turns 3-4 fit behind it); turn 6 needs the next one.
    assert sent[5].messages == [head, *_turn(3), *_turn(4)] and not sent[5].summarized
    assert sent[6].summarized and sent[6].messages[1:] == _turn(5)
    for turn in range(4, 13):
        body = sent[turn].messages
        assert str(body[0].content).startswith(SUMMARY_HEADER)
        assert len(body) - 1 <= POLICY.max_messages
        assert len(str(body[0].content)) <= len(SUMMARY_HEADER) + POLICY.summary_max_chars
        assert body[-2:] == _turn(turn - 1)  # the newest turn is always sent whole
    # Every other turn from turn 4 on: 4, 6, 8, 10, 12, each billed once, completed.
    rows = await _summary_rows(store, sid)
    assert rows == [(f"{sid}-t{t}", "completed") for t in (4, 6, 8, 10, 12)]
    # The run that summarized pays for it: its total counts the summary and its call.
    total = await store.run_total(f"{sid}-t4")
    assert total.attempts == 1 and total.usage.total_tokens > 0


async def test_a_truncate_policy_never_summarizes(store: EventStore, sid: str) -> None:
    history = ConversationHistory(store, Ledger(store), {})
    for turn in range(1, 7):
        spec = _spec(sid, turn).model_copy(update={"context": ContextPolicy(max_messages=4)})
        got = await _read(history, MockProvider(), spec)
        assert not got.summarized
        assert got.messages == [m for t in range(max(1, turn - 2), turn) for m in _turn(t)]
        await store.save_messages(sid, spec.run_id, turn, _turn(turn))
    assert await _summary_rows(store, sid) == []


@pytest.fixture
async def fake() -> AsyncIterator[AnthropicFake]:
    async with AnthropicFake() as server:
        yield server


async def test_an_anthropic_model_is_asked_once_and_the_next_turn_asks_nothing(
    store: EventStore, sid: str, fake: AnthropicFake
) -> None:
    secrets = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}
    history = ConversationHistory(store, Ledger(store), secrets)
    anthropic = AnthropicProvider()
    for turn in (1, 2, 3):
        await store.save_messages(sid, f"{sid}-t{turn}", turn, _turn(turn))
    # The first summary attempt fails at the API: billed as failed, nothing stored.
    fake.script(HttpError(529), Reply([Text("The user asked question 1.")]))
    with pytest.raises(AsmError) as overloaded:
        await _read(history, anthropic, _spec(sid, 4, "anthropic"))
    assert overloaded.value.code == "provider_unavailable" and overloaded.value.retryable
    retried = await _read(history, anthropic, _spec(sid, 4, "anthropic"), attempt=2)
    assert len(fake.requests) == 2
    request = fake.requests[-1].json
    assert request["system"] == SUMMARY_SYSTEM_PROMPT
    assert request["max_tokens"] <= POLICY.summary_max_chars and "thinking" not in request
    (ask,) = request["messages"]
    assert "question 1" in str(ask["content"]) and "answer 1" in str(ask["content"])
    assert "question 3" not in str(ask["content"])  # still in the window: not summarized
    assert retried.messages[0].content == SUMMARY_HEADER + "The user asked question 1."
    assert retried.messages[1:] == _turn(3)
    # A third attempt of the same turn, and the next turn, find the stored summary.
    assert (await _read(history, anthropic, _spec(sid, 4, "anthropic"), attempt=3)).messages == (
        retried.messages
    )
    await store.save_messages(sid, f"{sid}-t4", 4, _turn(4))
    nxt = await _read(history, anthropic, _spec(sid, 5, "anthropic"))
    assert nxt.messages == [retried.messages[0], *_turn(3), *_turn(4)]
    assert len(fake.requests) == 2
    entries = [e for e in await store.ledger(session_id=sid) if e.step == SUMMARY_STEP]
    # The failed attempt stays billed, marked superseded by the one that completed.
    assert [(e.attempt, e.outcome) for e in entries] == [(1, "superseded"), (2, "completed")]
    assert entries[1].usage.input_tokens > 0 and entries[1].cost_micros is not None
    # The run after next summarizes again, handing the model the summary so far.
    fake.script(Reply([Text("Questions 1 to 3 were asked.")]))
    await store.save_messages(sid, f"{sid}-t5", 5, _turn(5))
    later = await _read(history, anthropic, _spec(sid, 6, "anthropic"))
    assert len(fake.requests) == 3
    assert "The user asked question 1." in str(fake.requests[-1].json["messages"][0]["content"])
    assert later.messages == [
        Message(role="user", content=SUMMARY_HEADER + "Questions 1 to 3 were asked."),
        *_turn(5),
    ]


async def test_a_silent_summary_call_times_out_and_is_billed_failed(
    store: EventStore, sid: str, fake: AnthropicFake
) -> None:
    secrets = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}
    history = ConversationHistory(store, Ledger(store), secrets, tick=0.05)
    for turn in (1, 2, 3):
        await store.save_messages(sid, f"{sid}-t{turn}", turn, _turn(turn))
    fake.script(Stall())
    spec = _spec(sid, 4, "anthropic").model_copy(update={"heartbeat_timeout_seconds": 1.0})
    with pytest.raises(AsmError) as silent:
        await _read(history, AnthropicProvider(), spec)
    assert silent.value.code == "provider_timeout" and silent.value.retryable
    assert await _summary_rows(store, sid) == [(spec.run_id, "failed")]
    assert await store.summary(sid, 4) is None
