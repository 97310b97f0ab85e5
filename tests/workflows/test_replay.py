"""Recorded histories must keep replaying: a change that breaks determinism for running
sessions fails here. See tests/histories/record.py for how to add or refresh histories."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.temporal import data_converter
from workflows.agent_run import AgentRun
from workflows.agent_session import AgentSession

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_histories_cover_the_representative_sessions() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "session_multi_turn",
        "session_cancelled",
        "session_continued_as_new",
        "run_completed",
        "run_cancelled",
        "run_retried",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240 - tiny file
    replayer = Replayer(workflows=[AgentSession, AgentRun], data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
