"""How a retried attempt records the ends of CLI approvals its dead predecessor asked for
(``activities.cli_approvals``): which requests the log shows unanswered, and the events written
once the run has settled them, against a real SQLite store. The run is a stand-in answering
``describe_run`` (the real workflow is exercised by tests/chaos/test_cli_approval_crash.py)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.service import RPCError, RPCStatusCode

from agent_session_manager.activities import cli_approvals
from agent_session_manager.core.events import EventDraft, EventType
from agent_session_manager.core.tools import ApprovalResolution, RunProgress
from agent_session_manager.store import EventStore
from tests.activities.test_ledger import run_spec
from tests.activities.test_store_outage import fill_up, make_room

ASKED = EventType.TOOL_APPROVAL_REQUESTED
GRANTED = EventType.TOOL_APPROVAL_GRANTED
DENIED = EventType.TOOL_APPROVAL_DENIED
_ids = itertools.count()


def event(type: EventType, digest: Any, policy: str = "ask", run_id: str = "r1") -> EventDraft:
    return EventDraft(
        id=f"e{next(_ids)}",
        session_id="s1",
        run_id=run_id,
        attempt=1,
        type=type,
        data={"digest": digest, "policy": policy, "id": "call_1", "name": "Bash", "kind": "x"},
    )


class Run:
    """Answers ``describe_run`` with ``answers`` in turn (the last one from then on)."""

    id = "run-r1"

    def __init__(self, *answers: list[ApprovalResolution] | Exception) -> None:
        self.answers = list(answers)
        self.queries = 0

    async def query(self, name: str) -> dict[str, Any]:
        assert name == "describe_run"
        self.queries += 1
        answer = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        progress = RunProgress(run_id="r1", session_id="s1", status="running")
        progress.resolved_approvals = answer
        return progress.model_dump(mode="json")


def settled(digest: str, decision: str = "denied", reason: str | None = None) -> ApprovalResolution:
    return ApprovalResolution(
        run_id="r1",
        call_id="call_1",
        digest=digest,
        decision=decision,  # type: ignore[arg-type]
        reason=reason or "superseded: provider attempt 2 started",
    )


async def test_only_asks_without_an_answer_in_the_log_are_unended(store: EventStore) -> None:
    await store.append(
        [
            event(ASKED, "d1"),
            event(ASKED, "d2"),
            event(DENIED, "d2"),
            event(ASKED, "d3", policy="always"),  # answered by policy at once
            event(ASKED, "d4", run_id="r2"),  # another run's
            event(ASKED, "d5"),
            event(GRANTED, "d5"),
        ]
    )
    assert set(await cli_approvals._unended(store, run_spec())) == {"d1"}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([ASKED, GRANTED, DENIED]),
            st.one_of(st.sampled_from(["d1", "d2", "d3"]), st.none(), st.integers()),
            st.sampled_from(["ask", "always", "never"]),
        ),
        max_size=12,
    )
)
async def test_unended_follows_the_log_whatever_it_holds(
    store: EventStore, log: list[tuple[EventType, Any, str]]
) -> None:
    spec = run_spec(f"r-{next(_ids)}")  # one run per example: the store is the test's
    await store.append(
        [event(type, digest, policy, run_id=spec.run_id) for type, digest, policy in log]
    )
    expected: dict[str, bool] = {}
    for type, digest, policy in log:
        if type is ASKED and policy == "ask":
            expected[str(digest)] = True
        elif type is not ASKED:
            expected.pop(str(digest), None)
    assert set(await cli_approvals._unended(store, spec)) == set(expected)


async def test_ends_are_recorded_once_the_run_settled_them_and_only_once(
    store: EventStore,
) -> None:
    spec = run_spec()
    asked = {
        "d1": {"digest": "d1", "policy": "ask", "id": "call_1", "name": "Bash"},
        "d2": {"digest": "d2", "policy": "ask", "id": "call_2", "name": "Bash"},
    }
    run = Run(
        [],  # the signal is not processed yet
        [settled("d1"), settled("other")],
        [settled("d1"), settled("d2", "granted", "looks fine")],  # a human was quicker
    )
    await cli_approvals._record_ends(run, store, spec, 2, asked)
    await cli_approvals._record_ends(Run([settled("d1"), settled("d2")]), store, spec, 3, asked)
    ends = [e for e in await store.events("s1", run_id="r1") if e.type is not ASKED]
    assert [(e.type, e.data["digest"], e.data["decided_by"], e.attempt) for e in ends] == [
        (DENIED, "d1", "supersede", 2),
        (GRANTED, "d2", "human", 2),
    ]
    assert ends[0].data["reason"] == "superseded: provider attempt 2 started"
    assert ends[0].data["id"] == "call_1" and ends[1].data["reason"] == "looks fine"
    assert run.queries == 3


async def test_a_run_that_cannot_answer_records_nothing_and_gives_up(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cli_approvals, "_RECORD_SECONDS", 0.5)
    gone = RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
    await cli_approvals._record_ends(
        Run(gone), store, run_spec(), 2, {"d1": {"digest": "d1", "policy": "ask"}}
    )
    assert await store.events("s1", run_id="r1", strict=False) == []
    assert "r1: 1 approval ends not recorded" in caplog.text


async def test_a_full_disk_delays_the_ends_and_loses_none(store: EventStore) -> None:
    await fill_up(store)
    room = asyncio.create_task(make_room(store, after=1.0))
    asked = {d: {"digest": d, "policy": "ask", "note": "y" * 5000} for d in ("d1", "d2")}
    await cli_approvals._record_ends(
        Run([settled("d1"), settled("d2")]), store, run_spec(), 2, asked
    )
    await room
    ends = await store.events("s1", run_id="r1")
    assert [(e.type, e.data["digest"]) for e in ends] == [(DENIED, "d1"), (DENIED, "d2")]
