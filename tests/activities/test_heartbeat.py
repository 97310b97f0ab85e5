"""The attempt's heartbeat: nothing in the first interval, then intervals doubling to a cap."""

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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sent_at(every: float, most: float, until: float, step: float = 0.125) -> list[float]:
    """When a heartbeat called every ``step`` seconds until ``until`` is sent (binary
    fractions: the sums are exact)."""
    clock, sent = Clock(), []
    beat = Heartbeat(lambda *d: sent.append(clock.now), every, most, clock=clock)
    while clock.now <= until:
        beat()
        clock.now += step
    return sent


def test_later_heartbeats_come_further_apart_up_to_the_most() -> None:
    assert sent_at(0.25, 1.0, until=5.0) == [0.25, 0.75, 1.75, 2.75, 3.75, 4.75]


def test_a_throttle_longer_than_the_most_is_kept() -> None:
    assert sent_at(2.0, 1.0, until=7.0) == [2.0, 4.0, 6.0]


def test_an_attempt_that_calls_rarely_sends_on_each_call_past_due() -> None:
    clock, sent = Clock(), []
    beat = Heartbeat(lambda *d: sent.append(d), 0.25, 1.0, clock=clock)
    for t, n in ((0.125, 1), (5.0, 2), (5.25, 3), (5.5, 4), (6.0, 5), (6.5, 6)):
        clock.now = t
        beat(n)
    assert sent == [(2,), (4,), (6,)]  # past due at 5.0; then 0.5 later, then 1.0 later
