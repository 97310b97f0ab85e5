"""save_reply(): a completed model call's ledger row, transcript, events and (on the run's last
call) its ending, in one transaction whose ending carries the run's total."""

from __future__ import annotations

import pytest

from agent_session_manager.core.contract import LifecycleRecord, Message, RunPatch
from agent_session_manager.core.errors import StateError
from agent_session_manager.core.ledger import LedgerEntry, Outcome, UsageTotal
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore
from tests.store.drafts import deltas, run_of


def _entry(sid: str, run: str, attempt: int, outcome: Outcome, *, step: int = 1) -> LedgerEntry:
    return LedgerEntry(
        run_id=run,
        step=step,
        attempt=attempt,
        session_id=sid,
        agent_id="agent-r",
        provider="mock",
        model="mock-1",
        usage=TokenUsage(input_tokens=10, output_tokens=5),
        cost_micros=100,
        price_version="v1",
        outcome=outcome,
        error_code=None if outcome == "completed" else "provider_unavailable",
        day="2026-12-03",
    )


def _transcript(n: int) -> list[Message]:
    return [Message(role="user", content=f"q{n}"), Message(role="assistant", content=f"a{n}")]


class Ending:
    """An ending that records the totals it was built from (one call per transaction run)."""

    def __init__(self, sid: str, run: str, session_id: str | None = None) -> None:
        self.sid, self.run, self.session_id = sid, run, session_id or sid
        self.totals: list[UsageTotal] = []

    def __call__(self, total: UsageTotal) -> LifecycleRecord:
        self.totals.append(total)
        return LifecycleRecord(
            event_id=f"{self.run}/wf/run_completed",
            session_id=self.session_id,
            run_id=self.run,
            type="run_completed",
            data={"attempts": total.attempts, "cost_micros": total.cost_micros},
            run_status=RunStatus.COMPLETED,
            run_row=RunPatch(output="a1", attempts=total.attempts),
        )


async def _started(store: EventStore, sid: str, name: str) -> str:
    run = run_of(sid, name)
    await store.record(
        LifecycleRecord(
            event_id=f"{run}/wf/run_started",
            session_id=sid,
            run_id=run,
            type="run_started",
            run_status=RunStatus.RUNNING,
            run_row=RunPatch(session_id=sid, turn=1),
        )
    )
    return run


async def test_the_ending_carries_the_total_of_every_attempt(store: EventStore, sid: str) -> None:
    run = await _started(store, sid, "t1")
    await store.bill(_entry(sid, run, 1, "failed"))
    final = deltas(sid, "t1", 2, attempt=2)
    ending = Ending(sid, run)
    saved = await store.save_reply(
        sid, run, 1, _transcript(1), final, bill=_entry(sid, run, 2, "completed"), ending=ending
    )
    assert (saved.total.attempts, saved.total.cost_micros) == (2, 200)
    assert ending.totals == [saved.total] and saved.record == ending(saved.total)
    assert [e.id for e in saved.written] == [*(d.id for d in final), f"{run}/wf/run_completed"]
    assert saved.written[-1].data == {"attempts": 2, "cost_micros": 200}
    assert [r.outcome for r in await store.ledger(run_id=run)] == ["superseded", "completed"]
    assert await store.run_messages(run) == _transcript(1)
    row = await store.get_run(run)
    assert row is not None and row.status is RunStatus.COMPLETED and row.attempts == 2


async def test_saving_again_writes_no_second_row_and_returns_the_same_total(
    store: EventStore, sid: str
) -> None:
    # A commit in doubt: the activity's StoreOutage makes the same save again.
    run = await _started(store, sid, "t1")
    final = deltas(sid, "t1", 3)
    bill = _entry(sid, run, 1, "completed")
    first = await store.save_reply(
        sid, run, 1, _transcript(1), final, bill=bill, ending=Ending(sid, run)
    )
    again = await store.save_reply(
        sid, run, 1, _transcript(1), final, bill=bill, ending=Ending(sid, run)
    )
    assert again.written == [] and len(first.written) == 4
    assert again.total == first.total and again.record == first.record
    assert len(await store.ledger(run_id=run)) == 1
    assert await store.run_messages(run) == _transcript(1)
    assert await store.last_seq(sid) == 5  # run_started + 3 + run_completed


async def test_a_call_that_is_not_the_last_leaves_the_run_running(
    store: EventStore, sid: str
) -> None:
    run = await _started(store, sid, "t1")
    saved = await store.save_reply(
        sid, run, 1, _transcript(1), deltas(sid, "t1", 1), bill=_entry(sid, run, 1, "completed")
    )
    assert saved.record is None and len(saved.written) == 1
    assert saved.total.attempts == 1 and saved.total.cost_micros == 100
    second = await store.save_reply(
        sid, run, 1, _transcript(2), bill=_entry(sid, run, 1, "completed", step=2)
    )
    assert (second.total.attempts, second.total.cost_micros) == (2, 200)  # both calls
    row = await store.get_run(run)
    assert row is not None and row.status is RunStatus.RUNNING


async def test_nothing_is_written_when_the_ending_is_refused(store: EventStore, sid: str) -> None:
    run = await _started(store, sid, "t1")
    ending = Ending(sid, run, session_id=f"{sid}-other")
    with pytest.raises(StateError) as err:
        await store.save_reply(
            sid,
            run,
            1,
            _transcript(1),
            deltas(sid, "t1", 2),
            bill=_entry(sid, run, 1, "completed"),
            ending=ending,
        )
    assert err.value.code == "session_mismatch"
    assert len(ending.totals) == 1  # it was billed first, then rolled back with the rest
    assert await store.ledger(run_id=run) == []
    assert await store.run_messages(run) == []
    assert await store.last_seq(sid) == 1  # run_started only


@pytest.mark.parametrize("other", ["run", "session"])
async def test_another_runs_ledger_entry_is_refused_before_anything_is_written(
    store: EventStore, sid: str, other: str
) -> None:
    run = await _started(store, sid, "t1")
    bill = _entry(sid, run, 1, "completed")
    bill = bill.model_copy(update={"run_id": f"{run}-x"} if other == "run" else {"session_id": "x"})
    with pytest.raises(StateError) as err:
        await store.save_reply(sid, run, 1, _transcript(1), deltas(sid, "t1", 1), bill=bill)
    assert err.value.code == "run_mismatch"
    assert await store.ledger(session_id=sid) == [] and await store.ledger(session_id="x") == []
    assert await store.run_messages(run) == []
    assert await store.last_seq(sid) == 1  # run_started only
