"""The attempt's heartbeat: nothing in the first interval, then at most one per interval."""

from __future__ import annotations

from typing import Any

from agent_session_manager.activities.heartbeat import Heartbeat


def test_calls_within_the_first_interval_are_not_sent() -> None:
    sent: list[tuple[Any, ...]] = []
    beat = Heartbeat(lambda *d: sent.append(d), every=3600.0)
    for n in range(100):
        beat(n)
    assert sent == []


def test_an_elapsed_interval_sends_the_latest_details() -> None:
    sent: list[tuple[Any, ...]] = []
    beat = Heartbeat(lambda *d: sent.append(d), every=0.0)
    beat(1)
    beat(2, "x")
    assert sent == [(1,), (2, "x")]
