"""The agent loop's later model calls send the conversation its first call read (SQLite and
PostgreSQL): no read, and the same prefix even if the session's earlier turns changed since;
a run without tools, a first call and a forgotten run read it again."""

from __future__ import annotations

from agent_session_manager.activities.history import ConversationHistory
from agent_session_manager.activities.ledger import Ledger
from agent_session_manager.activities.providers.mock import MockProvider
from agent_session_manager.activities.store_outage import StoreOutage
from agent_session_manager.core.contract import Message, RunSpec
from agent_session_manager.store import EventStore


def _turn(n: int) -> list[Message]:
    return [
        Message(role="user", content=f"question {n}"),
        Message(role="assistant", content=f"answer {n}"),
    ]


def _beat(*details: object) -> None:
    pass


async def _session(store: EventStore, sid: str) -> None:
    for turn in (1, 2):
        await store.save_messages(sid, f"{sid}-t{turn}", turn, _turn(turn))


def _spec(sid: str, tools: list[str]) -> RunSpec:
    return RunSpec(
        run_id=f"{sid}-t3",
        session_id=sid,
        agent_id="agent-1",
        provider="mock",
        turn=3,
        messages=[Message(role="user", content="question 3")],
        tools=tools,
    )


async def test_later_calls_of_a_loop_send_what_its_first_call_read(
    store: EventStore, sid: str
) -> None:
    await _session(store, sid)
    history = ConversationHistory(store, Ledger(store), {})
    spec = _spec(sid, ["noop"])
    outage = StoreOutage(_beat)
    first = await history.read(spec, MockProvider(), 1, outage, step=1)
    assert first.messages == [*_turn(1), *_turn(2)]
    await store.mark_rolled_back(f"{sid}-t2")  # the session's earlier turns change
    later = await history.read(spec, MockProvider(), 1, outage, step=2)
    assert later.messages == first.messages and not later.summarized
    # A first call (a retried attempt of it, say) reads again, and its read is what is sent.
    again = await history.read(spec, MockProvider(), 2, outage, step=1)
    assert again.messages == _turn(1)
    assert (await history.read(spec, MockProvider(), 1, outage, step=3)).messages == _turn(1)
    # Once the loop ended, a late call of the run (another worker's retry) reads.
    history.forget(spec.run_id)
    await store.save_messages(sid, f"{sid}-t2b", 2, _turn(22))
    fresh = await history.read(spec, MockProvider(), 1, outage, step=2)
    assert fresh.messages == [*_turn(1), *_turn(22)]


async def test_a_run_without_tools_reads_on_every_call(store: EventStore, sid: str) -> None:
    await _session(store, sid)
    history = ConversationHistory(store, Ledger(store), {})
    spec = _spec(sid, [])
    outage = StoreOutage(_beat)
    assert (await history.read(spec, MockProvider(), 1, outage)).messages == [
        *_turn(1),
        *_turn(2),
    ]
    await store.mark_rolled_back(f"{sid}-t2")
    assert (await history.read(spec, MockProvider(), 1, outage, step=2)).messages == _turn(1)
