"""Billing an attempt (``activities.ledger``) against a real SQLite store: the usage the stream
reported, once per (run, attempt), through a store outage without failing the attempt."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent_session_manager.activities import ledger as ledger_module
from agent_session_manager.activities.ledger import Ledger, credential_alias
from agent_session_manager.activities.sink import StoreSink
from agent_session_manager.activities.store_outage import StoreOutage
from agent_session_manager.core.contract import Message, RunSpec
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.ledger import LedgerEntry
from agent_session_manager.core.prices import default_prices
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore
from tests.activities.test_store_outage import Beats, fill_up, make_room


def run_spec(run_id: str = "r1") -> RunSpec:
    return RunSpec(
        run_id=run_id,
        session_id="s1",
        agent_id="agent-1",
        provider="anthropic",
        model="claude-sonnet-4-6",
        turn=1,
        messages=[Message(role="user", content="hi")],
        tenant="acme",
    )


def sink_for(store: EventStore, beats: Beats, attempt: int = 1) -> StoreSink:
    return StoreSink(
        store, session_id="s1", run_id="r1", attempt=attempt, provider="anthropic", heartbeat=beats
    )


async def test_a_failed_attempt_is_billed_for_what_its_stream_reported(store: EventStore) -> None:
    beats = Beats()
    sink = sink_for(store, beats)
    await sink.emit(EventType.MESSAGE_SENT, {"message_id": "m", "model": "claude-sonnet-4-6"})
    await sink.emit(
        EventType.TOKEN_USAGE_UPDATED,
        {"input_tokens": 100, "output_tokens": 1, "cache_read_input_tokens": 50},
    )
    await sink.emit(EventType.TOKEN_USAGE_UPDATED, {"output_tokens": 30, "bogus": "x"})
    await sink.emit(EventType.TOKEN_USAGE_UPDATED, {"budget": {"scope": "session"}})  # not usage
    await sink.emit(EventType.TOKEN_USAGE_UPDATED, {"input_tokens": -4, "output_tokens": "9"})
    bill = Ledger(store).open(run_spec(), 1, 1, None, {"ANTHROPIC_API_KEY": "sk-secret"})
    total = await bill.close(sink, StoreOutage(beats), "failed", error_code="provider_timeout")
    assert total is not None
    usage = TokenUsage(input_tokens=100, output_tokens=30, cache_read_input_tokens=50)
    assert total.usage == usage
    price = default_prices().price("claude-sonnet-4-6")
    assert price is not None and total.cost_micros == price.cost_micros(usage)
    (row,) = await store.ledger(run_id="r1")
    assert row.credential == "ANTHROPIC_API_KEY" and "sk-secret" not in row.model_dump_json()
    assert (row.tenant, row.agent_id, row.error_code) == ("acme", "agent-1", "provider_timeout")
    assert (row.step, row.attempt) == (1, 1)
    # Closing again (a replayed path) writes nothing new.
    assert await bill.close(sink, StoreOutage(beats), "completed") == total
    assert len(await store.ledger(run_id="r1")) == 1


async def test_a_store_outage_is_waited_out_and_the_row_lands_once(store: EventStore) -> None:
    # Fill the ledger's pages first, so the next row needs a new one the full disk refuses.
    for i in range(300):
        entry = (
            Ledger(store)
            .open(run_spec(f"filler-{i}"), 1, 1, None, {})
            .entry("completed", TokenUsage(input_tokens=1))
        )
        await store.bill(entry)
    await fill_up(store)
    probe: LedgerEntry = (
        Ledger(store)
        .open(run_spec("probe"), 1, 1, None, {})
        .entry("failed", TokenUsage(input_tokens=1))
    )
    with pytest.raises(AsmError) as full:
        for i in range(50):  # until a row needs a page
            await store.bill(probe.model_copy(update={"run_id": f"probe-{i}"}))
    assert full.value.code == "storage_full"
    beats = Beats()
    sink = sink_for(store, beats)
    await sink.emit(EventType.TOKEN_USAGE_UPDATED, {"input_tokens": 7})
    room = asyncio.create_task(make_room(store, after=1.0))
    outage = StoreOutage(beats, initial_delay=0.05, max_delay=0.2)
    total = await Ledger(store).open(run_spec(), 1, 1, None, {}).close(sink, outage, "failed")
    await room
    assert total is not None and total.usage.input_tokens == 7 and total.attempts == 1
    assert outage.failures >= 1 and beats.count >= 1  # it waited, heartbeating, not failing


async def test_a_cancelled_attempt_gives_up_on_a_store_that_stays_out(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(300):
        entry = (
            Ledger(store)
            .open(run_spec(f"filler-{i}"), 1, 1, None, {})
            .entry("completed", TokenUsage(input_tokens=1))
        )
        await store.bill(entry)
    await fill_up(store)
    monkeypatch.setattr(ledger_module, "CANCELLED_WRITE_SECONDS", 0.5)
    beats = Beats()
    sink = sink_for(store, beats)
    caplog.set_level(logging.ERROR)
    results = []
    for i in range(50):  # until a row needs a page the full disk refuses
        bill = Ledger(store).open(run_spec(f"c-{i}"), 1, 1, None, {})
        results.append(await bill.close(sink, StoreOutage(beats, initial_delay=0.05), "cancelled"))
        if results[-1] is None:
            break
    await make_room(store)
    assert results[-1] is None  # given up after its short wait, not raised
    assert any("not written" in r.getMessage() for r in caplog.records)


def test_the_credential_alias_is_the_secrets_name() -> None:
    assert credential_alias("anthropic", {"ANTHROPIC_AUTH_TOKEN": "t"}) == "ANTHROPIC_AUTH_TOKEN"
    assert credential_alias("codex", {"OPENAI_API_KEY": "k"}) == "OPENAI_API_KEY"
    assert credential_alias("mock", {"ANTHROPIC_API_KEY": "k"}) is None
    assert credential_alias("anthropic", {}) is None
