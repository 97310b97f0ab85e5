"""The provider activity's last write, against a real SQLite store: a completed model call
commits its ledger row with its transcript and events (and ``run_completed`` on the run's last
call) in ONE transaction; a reply that cannot be saved is still billed."""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from agent_session_manager.activities import ledger as ledger_module
from agent_session_manager.activities.provider import ProviderActivities
from agent_session_manager.activities.providers.mock import MockProvider
from agent_session_manager.core.contract import (
    Message,
    MockScript,
    MockText,
    MockToolUse,
    ProviderCall,
    ProviderOutcome,
    RunSpec,
)
from agent_session_manager.core.errors import StorageError
from agent_session_manager.core.ledger import LedgerEntry
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.tools import ToolSpec
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore, _conversation, _ledger

USAGE = TokenUsage(input_tokens=12, output_tokens=7)


class _Handle:
    async def signal(self, *args: Any) -> None:
        """The session's run_finished: nobody listens in this test."""


class _Client:
    """What the activity asks of its Temporal client: a handle to signal."""

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        return _Handle()


#: The write transaction a store call runs in (set around each ``_run_write``).
_TX: contextvars.ContextVar[int] = contextvars.ContextVar("tx", default=0)


@pytest.fixture
def transactions(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """(transaction number, what) for every ledger row and transcript written, in order."""
    seen: list[tuple[int, str]] = []
    numbers = itertools.count(1)
    run_write = store._run_write

    async def numbered(fn: Callable[[Any], Awaitable[Any]], **kwargs: Any) -> Any:
        # The write runs in a task of its own, which copies this context when created.
        _TX.set(next(numbers))
        return await run_write(fn, **kwargs)

    def noting(what: str, original: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def noted(*args: Any, **kwargs: Any) -> Any:
            seen.append((_TX.get(), what))
            return await original(*args, **kwargs)

        return noted

    monkeypatch.setattr(store, "_run_write", numbered)
    monkeypatch.setattr(_ledger, "bill", noting("bill", _ledger.bill))
    monkeypatch.setattr(
        _conversation, "replace_messages", noting("messages", _conversation.replace_messages)
    )
    return seen


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[LedgerEntry]:
    """The attempts the cost metrics counted."""
    counted: list[LedgerEntry] = []
    monkeypatch.setattr(ledger_module, "record_attempt", counted.append)
    return counted


def call(script: MockScript) -> ProviderCall:
    return ProviderCall(
        spec=RunSpec(
            run_id="r1",
            session_id="s1",
            agent_id="agent-1",
            provider="mock",
            turn=1,
            messages=[Message(role="user", content="hi")],
            mock=script,
            client_tools=[ToolSpec(name="add")],
        )
    )


async def run(store: EventStore, script: MockScript) -> ProviderOutcome:
    acts = ProviderActivities(store=store, providers={"mock": MockProvider()})
    env = ActivityEnvironment(client=_Client())  # type: ignore[arg-type]  # a stand-in
    return await env.run(acts.stream_provider, call(script))


@pytest.mark.parametrize(
    "script",
    [
        MockScript(steps=[MockText(text="done")], usage=USAGE),
        MockScript(steps=[MockToolUse(name="add")], usage=USAGE, stop_reason="tool_use"),
    ],
    ids=["last call", "tool use"],
)
async def test_a_completed_call_bills_in_its_save_transaction(
    store: EventStore,
    transactions: list[tuple[int, str]],
    attempts: list[LedgerEntry],
    script: MockScript,
) -> None:
    outcome = await run(store, script)
    # One row and one transcript, in the same store transaction.
    assert [what for _, what in transactions] == ["bill", "messages"]
    assert len({tx for tx, _ in transactions}) == 1 and transactions[0][0] > 0
    (row,) = await store.ledger(run_id="r1")
    assert (row.outcome, row.usage) == ("completed", USAGE)
    assert [e.outcome for e in attempts] == ["completed"]
    assert outcome.billed_usage == USAGE and len(await store.run_messages("r1")) == 2
    run_row = await store.get_run("r1")
    assert run_row is not None
    if outcome.tool_calls:
        assert run_row.status is RunStatus.RUNNING
    else:
        assert run_row.status is RunStatus.COMPLETED
        (ended,) = await store.events("s1", types=["run_completed"])
        assert ended.data["cost_micros"] == outcome.cost_micros


async def test_a_reply_that_cannot_be_saved_is_still_billed(
    store: EventStore,
    transactions: list[tuple[int, str]],
    attempts: list[LedgerEntry],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(*args: Any, **kwargs: Any) -> None:
        raise StorageError("storage_write_failed", "the reply's write failed for good")

    monkeypatch.setattr(store, "save_reply", refused)
    with pytest.raises(ApplicationError) as err:
        await run(store, MockScript(steps=[MockText(text="lost")], usage=USAGE))
    assert err.value.type == "storage_write_failed"
    # The failure path bills what the provider answered, once: no row is silently lost.
    (row,) = await store.ledger(run_id="r1")
    assert (row.outcome, row.usage) == ("failed", USAGE)
    assert [e.outcome for e in attempts] == ["failed"]
    assert [what for _, what in transactions] == ["bill"]
    assert await store.run_messages("r1") == []
