"""Recorded histories must keep replaying: a change that breaks determinism for running
sessions fails here. See tests/histories/record.py for how to add or refresh histories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from agent_session_manager.core.temporal import data_converter
from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.agent_session import AgentSession

ROOT = Path(__file__).parent.parent / "histories"
#: Current recordings at the top; ``before-<patch>/`` holds those a ``workflow.patched`` guards.
HISTORIES = sorted(ROOT.rglob("*.json"))


def test_histories_cover_the_representative_sessions() -> None:
    names = {p.stem for p in HISTORIES if p.parent == ROOT}
    assert {
        "session_multi_turn",
        "session_cancelled",
        "session_continued_as_new",
        "session_preempted",
        "run_completed",
        "run_cancelled",
        "run_retried",
        "run_tool_loop",
        "run_attempt_started",
    } <= names


def _patches(path: Path) -> set[str]:
    """The ``workflow.patched`` ids a history recorded as taken."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    return {
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    }


def test_every_patch_is_replayed_down_both_branches() -> None:
    befores = sorted(d for d in ROOT.iterdir() if d.is_dir() and d.name.startswith("before-"))
    assert befores, "expected the histories of at least one patch (account-on-settle)"
    for before in befores:
        patch = before.name.removeprefix("before-")
        old = sorted(before.glob("*.json"))
        assert old, f"{before} is empty"
        for path in old:
            assert patch not in _patches(path), f"{path} took the patched branch"
            assert patch in _patches(ROOT / path.name), f"{path.name} misses patch {patch}"


@pytest.mark.parametrize(
    "path", HISTORIES, ids=[str(p.relative_to(ROOT).with_suffix("")) for p in HISTORIES]
)
async def test_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240 - tiny file
    replayer = Replayer(workflows=[AgentSession, AgentRun], data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
