"""Issue 18 acceptance: the cost ledger counts every attempt, budgets stop spending before it
happens, and a visibility query finds the sessions that cost more than $1 today.

Real dev server, real ``anthropic`` SDK against the wire-level
:class:`~tests.fakes.anthropic_server.AnthropicFake` (which reports the usage it served), real
SQLite event store.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.budget import Budget, BudgetPolicy
from agent_session_manager.core.contract import MockScript, MockText, RetrySettings, SessionSpec
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.prices import PriceTable, default_prices, parse_prices
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore
from tests.fakes.anthropic_server import (
    AnthropicFake,
    Drop,
    Reply,
    StreamError,
    Text,
    ToolUse,
    Usage,
)
from tests.workflows.test_agent_loop import CALLS, TOOLS

API_KEY = "sk-ant-ledger-SECRET"
MODEL = "claude-sonnet-4-6"
FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=1)


def secrets_for(fake: AnthropicFake) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}


def anthropic_spec(**overrides: Any) -> SessionSpec:
    fields: dict[str, Any] = {
        "agent_id": f"agent-{uuid.uuid4().hex[:8]}",
        "provider": "anthropic",
        "model": MODEL,
        "retry": FAST_RETRY,
        **overrides,
    }
    return SessionSpec(**fields)


def as_usage(served: dict[str, int]) -> TokenUsage:
    return TokenUsage(**served)


async def test_three_mid_stream_failures_are_billed_exactly_as_the_fake_served_them(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    usage = Usage(input_tokens=1200, cache_creation_input_tokens=300, cache_read_input_tokens=4000)
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(
            # After the content, before message_delta: input and cache counts were reported.
            Reply([Text("Partial ", "one")], usage=usage, interrupt=StreamError()),
            # Cut mid-body after message_start, ping and a block start.
            Reply([Text("Partial ", "two")], usage=usage, interrupt=Drop(after_events=4)),
            # After message_delta: the output count was reported too, then the stream broke.
            Reply(
                [Text("Partial ", "three")],
                usage=Usage(input_tokens=1200, output_tokens=9),
                interrupt=StreamError(after_events=7),
            ),
            Reply([Text("Finally", " done.")], usage=Usage(input_tokens=1200, output_tokens=25)),
        )
        async with run_worker(secrets=secrets_for(fake)):
            sid = (await client.start_session(anthropic_spec())).session_id
            ref = await client.submit_run(sid, "Count every attempt")
            result = await client.wait_run(ref.run_id, sid)
            view = await client.describe(sid)
        served = as_usage(fake.served_usage)
        assert len(fake.served) == 4

    assert result.status is RunStatus.COMPLETED and result.attempts == 4
    rows = await store.ledger(run_id=ref.run_id)
    assert [r.attempt for r in rows] == [1, 2, 3, 4]
    assert [r.outcome for r in rows] == ["superseded", "superseded", "superseded", "completed"]
    assert {r.credential for r in rows} == {"ANTHROPIC_API_KEY"}
    # Exactly what the fake served, summed over the four attempts.
    billed = TokenUsage.accumulate(r.usage for r in rows)
    assert billed == served
    assert served.input_tokens == 4 * 1200  # sanity: the failures were counted, not skipped
    (total,) = await store.usage_totals("run", run_id=ref.run_id)
    assert total.usage == served and total.attempts == 4
    # The price table applied to those tokens, per attempt, in micro-dollars.
    prices = default_prices()
    price = prices.price(MODEL)
    assert price is not None
    expected = sum(price.cost_micros(r.usage) for r in rows)
    assert [r.cost_micros for r in rows] == [price.cost_micros(r.usage) for r in rows]
    assert {r.price_version for r in rows} == {prices.version}
    assert total.cost_micros == expected > 0
    assert result.cost_micros == expected
    assert result.billed_usage == served
    assert result.usage == TokenUsage(input_tokens=1200, output_tokens=25)  # the reply's own
    assert view.cost_micros == expected
    # Nothing secret in the ledger.
    assert all(API_KEY not in r.model_dump_json() for r in rows)


async def test_a_run_that_exhausts_its_retries_carries_the_cost_of_every_attempt(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    retry = RetrySettings(max_attempts=2, initial_interval_seconds=0.1)
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(
            *(
                Reply([Text("no")], usage=Usage(input_tokens=500), interrupt=StreamError())
                for _ in range(2)
            )
        )
        async with run_worker(secrets=secrets_for(fake)):
            sid = (await client.start_session(anthropic_spec(retry=retry))).session_id
            ref = await client.submit_run(sid, "fail twice")
            result = await client.wait_run(ref.run_id, sid)
            view = await client.describe(sid)
        served = as_usage(fake.served_usage)
    assert result.status is RunStatus.FAILED and result.attempts == 2
    rows = await store.ledger(run_id=ref.run_id)
    assert [r.outcome for r in rows] == ["failed", "failed"]
    assert TokenUsage.accumulate(r.usage for r in rows) == served
    expected = sum(r.cost_micros or 0 for r in rows)
    assert expected > 0
    assert result.cost_micros == expected and result.billed_usage == served
    assert view.cost_micros == expected


async def test_a_session_budget_stops_before_the_call_that_would_pass_it(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    per_call = Usage(input_tokens=30, output_tokens=10)  # 40 tokens a call
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(*(Reply([Text("ok")], usage=per_call) for _ in range(3)))
        async with run_worker(secrets=secrets_for(fake)):
            sid = (
                await client.start_session(anthropic_spec(budget=Budget(tokens=100, warn_at=0.5)))
            ).session_id
            first = await client.wait_run((await client.submit_run(sid, "one")).run_id, sid)
            second = await client.wait_run((await client.submit_run(sid, "two")).run_id, sid)
            third_ref = await client.submit_run(sid, "three")
            third = await client.wait_run(third_ref.run_id, sid)
        requests = len(fake.message_requests)

    assert first.status is RunStatus.COMPLETED and second.status is RunStatus.COMPLETED
    # 80 tokens spent; the next call is projected at the last one (40): 120 > 100.
    assert third.status is RunStatus.FAILED
    assert third.error is not None and third.error["code"] == "budget_exceeded"
    assert third.error["details"]["scope"] == "session"
    assert third.attempts == 1  # final: not retried
    assert requests == 2  # nothing was sent for the third call
    assert await store.ledger(run_id=third_ref.run_id) == []
    assert (await store.spend(session_id=sid)).tokens == 80 <= 100
    # The second call was projected at 80 of 100 (>= 50%): it carried a warning.
    events = await store.events(sid, limit=10_000)
    warnings = [e for e in events if e.type is EventType.TOKEN_USAGE_UPDATED and "budget" in e.data]
    assert warnings and warnings[0].data["budget"]["scope"] == "session"


async def test_an_agent_daily_budget_in_money_is_enforced_across_sessions(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    # Sonnet: 100 input tokens = 300 micro-dollars a call; the agent may spend 500 a day.
    policy = BudgetPolicy(agents={agent: Budget(cost_micros=500)})
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(Reply([Text("ok")], usage=Usage(input_tokens=100, output_tokens=0)))
        async with run_worker(secrets=secrets_for(fake), budgets=policy):
            one = (await client.start_session(anthropic_spec(agent_id=agent))).session_id
            first = await client.wait_run((await client.submit_run(one, "a")).run_id, one)
            two = (await client.start_session(anthropic_spec(agent_id=agent))).session_id
            # A fresh session has no last call (projected 0), but 300 of 500 is spent: its
            # first call may go; make it expensive enough to end the day's budget.
            fake.script(Reply([Text("ok")], usage=Usage(input_tokens=100, output_tokens=0)))
            second = await client.wait_run((await client.submit_run(two, "b")).run_id, two)
            third = await client.wait_run((await client.submit_run(two, "c")).run_id, two)
        requests = len(fake.message_requests)
    assert first.status is RunStatus.COMPLETED and second.status is RunStatus.COMPLETED
    assert third.error is not None and third.error["code"] == "budget_exceeded"
    assert third.error["details"]["scope"] == "agent"
    assert requests == 2


async def test_sessions_of_an_agent_that_cost_more_than_a_dollar_today(
    client: SessionClient, store: EventStore, run_worker: Any, temporal: Client
) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    # The mock's model priced for this test: $1 = 10^6 micro-dollars; 1 input token = $0.25.
    prices: PriceTable = default_prices().merged(
        parse_prices(
            '{"version": "test-1", "models": {"mock-1": {"input": "250000", "output": "0"}}}',
            "test",
        )
    )

    def mock(tokens: int) -> MockScript:
        return MockScript(steps=[MockText(text="ok")], usage=TokenUsage(input_tokens=tokens))

    async with run_worker(prices=prices):
        expensive = (await client.start_session(SessionSpec(agent_id=agent))).session_id
        cheap = (await client.start_session(SessionSpec(agent_id=agent))).session_id
        other = (await client.start_session(SessionSpec(agent_id=f"{agent}-x"))).session_id
        for sid, tokens in ((expensive, 5), (cheap, 3), (other, 9)):  # $1.25, $0.75, $2.25
            ref = await client.submit_run(sid, "spend", mock=mock(tokens))
            assert (await client.wait_run(ref.run_id, sid)).status is RunStatus.COMPLETED
        today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
        query = f"AsmAgentId = '{agent}' AND AsmCostMicros > 1000000 AND StartTime >= '{today}'"
        found: list[str] = []
        for _ in range(100):  # visibility is eventually consistent
            found = [s.session_id for s in await client.list_sessions(query)]
            if found == [expensive]:
                break
            await asyncio.sleep(0.1)
        described = await client.describe(expensive)
    assert found == [expensive]
    assert described.cost_micros == 1_250_000
    listed = await client.list_sessions(f"AsmAgentId = '{agent}'")
    assert {s.session_id: s.cost_micros for s in listed} == {
        expensive: 1_250_000,
        cheap: 750_000,
    }
    (by_agent,) = await store.usage_totals("agent", agent_id=agent)
    assert by_agent.cost_micros == 2_000_000


async def test_an_unknown_model_is_billed_with_its_tokens_and_no_cost(
    client: SessionClient, store: EventStore, run_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_worker():
        sid = (
            await client.start_session(SessionSpec(agent_id="agent-unpriced", model="mock-9000"))
        ).session_id
        ref = await client.submit_run(
            sid,
            "hi",
            mock=MockScript(steps=[MockText(text="ok")], usage=TokenUsage(input_tokens=7)),
        )
        result = await client.wait_run(ref.run_id, sid)
    (row,) = await store.ledger(run_id=ref.run_id)
    assert row.model == "mock-9000" and row.usage.input_tokens == 7
    assert row.cost_micros is None and row.price_version is None
    assert result.cost_micros == 0
    (total,) = await store.usage_totals("model", session_id=sid)
    assert total.unpriced_attempts == 1
    assert any("no price for model 'mock-9000'" in r.getMessage() for r in caplog.records)


async def test_a_cancelled_attempt_is_billed_for_what_was_reported_before_the_cancel(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(
            Reply(
                [Text(*[f"token{i} " for i in range(200)])],
                usage=Usage(input_tokens=321, cache_read_input_tokens=12),
                delay=0.05,
            )
        )
        async with run_worker(secrets=secrets_for(fake)):
            sid = (await client.start_session(anthropic_spec())).session_id
            ref = await client.submit_run(sid, "a long answer, please")
            async for _ in client.stream_text(sid, ref.run_id):
                break  # it is streaming: message_start's usage has been reported
            await client.cancel_run(sid, ref.run_id)
            result = await client.wait_run(ref.run_id, sid)
        served = as_usage(fake.served_usage)
    assert result.status is RunStatus.CANCELLED
    (row,) = await store.ledger(run_id=ref.run_id)
    assert row.outcome == "cancelled" and row.error_code == "cancelled"
    assert (
        row.usage
        == served
        == TokenUsage(input_tokens=321, output_tokens=1, cache_read_input_tokens=12)
    )
    assert row.cost_micros is not None and row.cost_micros > 0


def test_budget_exceeded_is_final() -> None:
    err = AsmError("budget_exceeded", "spent")
    assert err.category == "resource" and not err.retryable


# --- the agent loop: one model call per step, each with its own attempts ---------------------


async def test_a_two_tool_loop_bills_one_row_per_model_call(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    CALLS.clear()
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(
            Reply(
                [ToolUse("add", {"a": 1, "b": 2})], usage=Usage(input_tokens=100, output_tokens=7)
            ),
            # The second model call fails mid-stream once (after message_start), then succeeds.
            Reply([Text("cut")], usage=Usage(input_tokens=140), interrupt=StreamError()),
            Reply(
                [ToolUse("add", {"a": 3, "b": 4})],
                usage=Usage(input_tokens=140, output_tokens=9, cache_read_input_tokens=60),
            ),
            Reply([Text("3 and 7")], usage=Usage(input_tokens=180, output_tokens=5)),
        )
        async with run_worker(secrets=secrets_for(fake), tools=TOOLS):
            sid = (await client.start_session(anthropic_spec(tools=["add"]))).session_id
            ref = await client.submit_run(sid, "add twice")
            result = await client.wait_run(ref.run_id, sid)
            view = await client.describe(sid)
        served = as_usage(fake.served_usage)
        assert len(fake.message_requests) == 4
    assert result.status is RunStatus.COMPLETED, result
    assert result.output == "3 and 7" and CALLS == ["add 1 2", "add 3 4"]
    rows = await store.ledger(run_id=ref.run_id)
    # One row per model call and attempt; the failed attempt is superseded by its own call's
    # retry, the other calls' first attempts stay completed.
    assert [(r.step, r.attempt, r.outcome) for r in rows] == [
        (1, 1, "completed"),
        (2, 1, "superseded"),
        (2, 2, "completed"),
        (3, 1, "completed"),
    ]
    billed = TokenUsage.accumulate(r.usage for r in rows)
    assert billed == served
    assert served.input_tokens == 100 + 140 + 140 + 180  # the failed attempt is counted
    price = default_prices().price(MODEL)
    assert price is not None
    assert [r.cost_micros for r in rows] == [price.cost_micros(r.usage) for r in rows]
    expected = sum(price.cost_micros(r.usage) for r in rows)
    (total,) = await store.usage_totals("run", run_id=ref.run_id)
    assert total.attempts == 4 and total.usage == served and total.cost_micros == expected > 0
    assert result.cost_micros == expected and result.billed_usage == served
    assert view.cost_micros == expected
    (by_session,) = await store.usage_totals("session", session_id=sid)
    assert by_session.cost_micros == expected


async def test_a_budget_stops_the_loop_before_the_model_call_that_would_pass_it(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    CALLS.clear()
    per_call = Usage(input_tokens=30, output_tokens=10)  # 40 tokens a model call
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(
            Reply([ToolUse("add", {"a": 1, "b": 1})], usage=per_call),
            Reply([ToolUse("add", {"a": 2, "b": 2})], usage=per_call),
            Reply([Text("never sent")], usage=per_call),
        )
        async with run_worker(secrets=secrets_for(fake), tools=TOOLS):
            sid = (
                await client.start_session(anthropic_spec(tools=["add"], budget=Budget(tokens=100)))
            ).session_id
            ref = await client.submit_run(sid, "add until the budget ends")
            result = await client.wait_run(ref.run_id, sid)
        requests = len(fake.message_requests)
    # Calls 1 and 2 went (0 then 40 spent, 40 projected); the third would pass 100 (80 + 40).
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error["code"] == "budget_exceeded"
    assert requests == 2  # nothing was sent for the third model call
    assert CALLS == ["add 1 1", "add 2 2"]  # both tools ran; the loop stopped at the model
    rows = await store.ledger(run_id=ref.run_id)
    assert [(r.step, r.attempt, r.outcome) for r in rows] == [
        (1, 1, "completed"),
        (2, 1, "completed"),
    ]
    assert (await store.spend(session_id=sid)).tokens == 80 <= 100


# --- one notion of tenant: start_session(tenant=) is the tenant budgets and the ledger see ---


async def test_a_session_started_with_a_tenant_is_that_tenants_for_budgets_and_the_ledger(
    client: SessionClient, store: EventStore, run_worker: Any, temporal: Client
) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    policy = BudgetPolicy(tenants={tenant: Budget(tokens=15)})

    def mock(tokens: int) -> MockScript:
        return MockScript(steps=[MockText(text="ok")], usage=TokenUsage(input_tokens=tokens))

    async with run_worker(budgets=policy):
        view = await client.start_session(agent_id="agent-tenant", tenant=tenant)
        sid = view.session_id
        first = await client.wait_run(
            (await client.submit_run(sid, "a", mock=mock(10))).run_id, sid
        )
        # 10 spent, the next call projected at 10: 20 > 15, refused before the call.
        second = await client.wait_run(
            (await client.submit_run(sid, "b", mock=mock(1))).run_id, sid
        )
        # A session of the same tenant named by its tag shares the tenant's day.
        tagged = await client.start_session(agent_id="agent-tenant", tags=[f"tenant:{tenant}"])
        third = await client.wait_run(
            (await client.submit_run(tagged.session_id, "c", mock=mock(6))).run_id,
            tagged.session_id,
        )
    assert first.status is RunStatus.COMPLETED
    assert second.error is not None and second.error["code"] == "budget_exceeded"
    assert second.error["details"]["scope"] == "tenant"
    # The tagged session's first call is projected at its own last call (none: 0) and the
    # tenant's 10 < 15: it goes, and the tenant's usage counts both sessions.
    assert third.status is RunStatus.COMPLETED
    (row,) = await store.ledger(session_id=sid)
    assert row.tenant == tenant
    (by_tenant,) = await store.usage_totals("tenant", tenant=tenant)
    assert by_tenant.key == tenant and by_tenant.usage.input_tokens == 16
    # The same tenant in visibility (AsmTenant) for both ways of naming it.
    found: set[str] = set()
    for _ in range(100):
        found = {s.session_id for s in await client.list_sessions(f"AsmTenant = '{tenant}'")}
        if found == {sid, tagged.session_id}:
            break
        await asyncio.sleep(0.1)
    assert found == {sid, tagged.session_id}


@pytest.mark.parametrize(
    ("tags", "tenant"),
    [
        (["tenant:other"], "acme"),  # the tag and tenant= disagree
        (["tenant:a", "tenant:b"], None),  # two tags, two tenants
        (["tenant:bad name"], None),  # not a tenant's name
        (["tenant:"], None),  # an empty one
        ([], "t" * 58),  # too long for its tag (tenant: + 57 is a tag's 64)
        ([f"t{i}" for i in range(32)], "acme"),  # no room for the tenant's tag
    ],
)
async def test_conflicting_or_bad_tenants_are_a_typed_validation_error(
    client: SessionClient, tags: list[str], tenant: str | None
) -> None:
    with pytest.raises(AsmError) as err:
        await client.start_session(agent_id="agent-tenant", tags=tags, tenant=tenant)
    assert err.value.code == "validation_error"
    assert err.value.details["field"] in ("tenant", "tags")
