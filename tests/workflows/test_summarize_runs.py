"""The ``summarize`` context policy end to end: real dev server, the ``anthropic`` adapter
against the wire-level fake, real SQLite store. The run whose window first drops a turn asks
for one summary (billed as its step 0, in its cost), sends it ahead of the window, and the next
run reuses it without another request; the summary's stream is not the run's."""

from __future__ import annotations

from typing import Any

from agent_session_manager.activities.history import SUMMARY_HEADER, SUMMARY_SYSTEM_PROMPT
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    ContextPolicy,
    MockError,
    MockScript,
    MockText,
    SessionSpec,
)
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore, Summary
from tests.fakes.anthropic_server import AnthropicFake, Reply, Text, Usage
from tests.workflows.test_cost_ledger import API_KEY, FAST_RETRY, anthropic_spec, secrets_for

SUMMARY = "Earlier the user said one and two."


async def test_one_summary_per_half_window_billed_to_the_run_that_asked(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    policy = ContextPolicy(strategy="summarize", max_messages=4, summary_max_chars=500)
    replies = [Reply([Text(f"reply {n}")], usage=Usage(input_tokens=50)) for n in range(1, 6)]
    summary = Reply([Text(SUMMARY)], usage=Usage(input_tokens=40, output_tokens=10))
    async with AnthropicFake(api_key=API_KEY) as fake:
        # Runs 1-3 fit; run 4 drops run 1: summary, then its call; run 5 reuses the summary.
        fake.script(*replies[:3], summary, *replies[3:])
        async with run_worker(secrets=secrets_for(fake)):
            sid = (await client.start_session(anthropic_spec(context=policy))).session_id
            results = []
            refs = []
            for n in range(1, 6):
                refs.append(await client.submit_run(sid, f"prompt {n}"))
                results.append(await client.wait_run(refs[-1].run_id, sid))
        requests = [r.json for r in fake.message_requests]

    assert [r.status for r in results] == [RunStatus.COMPLETED] * 5
    assert len(requests) == 6  # five runs and one summary
    assert requests[3]["system"] == SUMMARY_SYSTEM_PROMPT
    assert "prompt 1" in str(requests[3]["messages"])
    lead = requests[4]["messages"][0]
    assert SUMMARY_HEADER + SUMMARY in str(lead["content"])
    assert SUMMARY in str(requests[5]["messages"][0]["content"])  # run 5: reused, not asked
    # Run 4 paid for the summary (step 0) and its own call (step 1); its cost says so.
    rows = await store.ledger(run_id=refs[3].run_id)
    assert [(r.step, r.outcome) for r in rows] == [(0, "completed"), (1, "completed")]
    assert results[3].cost_micros == sum(r.cost_micros or 0 for r in rows) > rows[1].cost_micros
    assert [len(await store.ledger(run_id=ref.run_id)) for ref in refs] == [1, 1, 1, 2, 1]
    # The summary streamed to nobody: run 4's events carry its reply only.
    events = await store.events(sid, limit=10_000)
    streamed = "".join(
        str(e.data.get("text", ""))
        for e in events
        if e.type is EventType.MESSAGE_STREAMED and e.run_id == refs[3].run_id
    )
    assert streamed == "reply 4"


async def test_a_failed_summary_is_retried_with_the_run_and_asked_for_once_it_worked(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    policy = ContextPolicy(strategy="summarize", max_messages=4, summary_max_chars=200)
    # The mock's scripted summary fails on the first attempt (the run's retry policy retries
    # the attempt), then answers.
    script = MockScript(
        steps=[MockText(text="ok")],
        usage=TokenUsage(input_tokens=10, output_tokens=1),
        summary=MockScript(
            steps=[MockError(attempts=[1]), MockText(text="SCRIPTED SUMMARY")],
            usage=TokenUsage(input_tokens=30, output_tokens=5),
        ),
    )
    spec = SessionSpec(
        agent_id="summarizer", provider="mock", mock=script, context=policy, retry=FAST_RETRY
    )
    async with run_worker():
        sid = (await client.start_session(spec)).session_id
        refs, results = [], []
        for n in range(1, 6):
            refs.append(await client.submit_run(sid, f"prompt {n}"))
            results.append(await client.wait_run(refs[-1].run_id, sid))
    assert [r.status for r in results] == [RunStatus.COMPLETED] * 5
    assert [r.attempts for r in results] == [1, 1, 1, 2, 1]
    rows = await store.ledger(run_id=refs[3].run_id)
    assert [(r.step, r.attempt, r.outcome) for r in rows] == [
        (0, 1, "superseded"),
        (0, 2, "completed"),
        (1, 2, "completed"),
    ]
    assert results[3].billed_usage == TokenUsage(input_tokens=40, output_tokens=6)
    # Run 4 (turn 4) kept turn 3 behind the summary: it covers turns 1-2.
    assert await store.summary(sid, 5) == Summary(3, "SCRIPTED SUMMARY")
    assert [len(await store.ledger(run_id=ref.run_id)) for ref in refs] == [1, 1, 1, 3, 1]
