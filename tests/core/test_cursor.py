"""EventCursor: forward-only, exactly-once, in order, scoped, with a bounded buffer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_session_manager.core.cursor import EventCursor
from agent_session_manager.core.errors import StateError
from agent_session_manager.core.events import Event, EventType

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PROPERTY = settings(database=None, deadline=None, max_examples=300)


def ev(seq: int, *, session_id: str = "ses_1", run_id: str | None = "run_1") -> Event:
    return Event(
        id=f"{session_id}/{seq}",
        session_id=session_id,
        run_id=run_id,
        type=EventType.MESSAGE_STREAMED if run_id else EventType.SESSION_STARTED,
        seq=seq,
        created_at=T0,
    )


def seqs(events: list[Event]) -> list[int]:
    return [e.seq for e in events]


def test_feed_delivers_events_in_seq_order() -> None:
    cursor = EventCursor("ses_1")
    assert seqs(cursor.feed([ev(3), ev(1), ev(2)])) == [1, 2, 3]
    assert cursor.position == 3


def test_events_already_delivered_are_not_delivered_again() -> None:
    cursor = EventCursor("ses_1")
    cursor.feed([ev(1), ev(2)])
    assert seqs(cursor.feed([ev(2), ev(3)])) == [3]


def test_a_duplicate_within_one_batch_is_delivered_once() -> None:
    assert seqs(EventCursor("ses_1").feed([ev(1), ev(1)])) == [1]


def test_a_late_event_below_the_position_is_skipped_not_reordered() -> None:
    cursor = EventCursor("ses_1")
    cursor.feed([ev(5)])
    assert cursor.feed([ev(4)]) == []


def test_starting_after_a_seq_skips_what_came_before() -> None:
    assert seqs(EventCursor("ses_1", after_seq=2).feed([ev(1), ev(2), ev(3)])) == [3]


def test_advance_moves_forward_without_delivering() -> None:
    cursor = EventCursor("ses_1")
    cursor.advance(10)
    assert cursor.position == 10
    assert seqs(cursor.feed([ev(9), ev(11)])) == [11]


def test_advance_to_the_current_position_is_allowed() -> None:
    cursor = EventCursor("ses_1", after_seq=4)
    cursor.advance(4)
    assert cursor.position == 4


def test_advance_backwards_is_invalid_cursor() -> None:
    cursor = EventCursor("ses_1", after_seq=5)
    with pytest.raises(StateError) as caught:
        cursor.advance(4)
    assert caught.value.code == "invalid_cursor"
    assert caught.value.details == {"position": 5, "seq": 4}
    assert cursor.position == 5


def test_a_negative_starting_position_is_invalid_cursor() -> None:
    with pytest.raises(StateError) as caught:
        EventCursor("ses_1", after_seq=-1)
    assert caught.value.code == "invalid_cursor"


def test_an_event_of_another_session_is_session_mismatch() -> None:
    with pytest.raises(StateError) as caught:
        EventCursor("ses_1").feed([ev(1, session_id="ses_2")])
    assert caught.value.code == "session_mismatch"


def test_an_event_of_another_run_is_run_mismatch_on_a_run_cursor() -> None:
    with pytest.raises(StateError) as caught:
        EventCursor("ses_1", run_id="run_1").feed([ev(1, run_id="run_2")])
    assert caught.value.code == "run_mismatch"


def test_a_session_level_event_is_run_mismatch_on_a_run_cursor() -> None:
    with pytest.raises(StateError) as caught:
        EventCursor("ses_1", run_id="run_1").feed([ev(1, run_id=None)])
    assert caught.value.code == "run_mismatch"


def test_a_session_cursor_accepts_events_of_every_run() -> None:
    delivered = EventCursor("ses_1").feed([ev(1, run_id="run_a"), ev(2, run_id=None)])
    assert seqs(delivered) == [1, 2]


def test_a_batch_with_a_foreign_event_is_rejected_whole() -> None:
    cursor = EventCursor("ses_1")
    with pytest.raises(StateError):
        cursor.feed([ev(1), ev(2, session_id="ses_2")])
    assert cursor.position == 0
    assert cursor.buffer == []


def test_the_buffer_is_bounded_and_keeps_the_newest() -> None:
    cursor = EventCursor("ses_1", buffer_size=3)
    cursor.feed([ev(i) for i in range(1, 6)])
    assert seqs(cursor.buffer) == [3, 4, 5]
    cursor.feed([ev(6)])
    assert seqs(cursor.buffer) == [4, 5, 6]
    assert cursor.buffer_size == 3


def test_a_buffer_size_below_one_is_a_programmer_error() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        EventCursor("ses_1", buffer_size=0)


BATCHES = st.lists(st.lists(st.integers(min_value=1, max_value=40), max_size=12), max_size=8)


@PROPERTY
@given(BATCHES, st.lists(st.integers(min_value=0, max_value=40), max_size=8))
def test_the_cursor_never_yields_an_event_twice_or_out_of_order(
    batches: list[list[int]], advances: list[int]
) -> None:
    cursor = EventCursor("ses_1", buffer_size=5)
    delivered: list[int] = []
    for i, batch in enumerate(batches):
        if i < len(advances) and advances[i] >= cursor.position:
            cursor.advance(advances[i])
        before = cursor.position
        out = seqs(cursor.feed([ev(s) for s in batch]))
        assert all(s > before for s in out)
        delivered.extend(out)
    assert delivered == sorted(set(delivered))
    assert seqs(cursor.buffer) == delivered[-5:]
