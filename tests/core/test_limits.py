"""ConcurrencyLimiter: session and run slots, limits, idempotency and release rules."""

from __future__ import annotations

import pytest

from agent_session_manager.core.errors import ConcurrencyError, ResourceError, ValidationError
from agent_session_manager.core.limits import ConcurrencyLimiter, LimiterStatus


def limiter(**kw: int | None) -> ConcurrencyLimiter:
    return ConcurrencyLimiter.model_validate(kw)


def test_default_limits_are_100_sessions_and_50_runs() -> None:
    status = ConcurrencyLimiter().status()
    assert (status.max_sessions, status.max_runs) == (100, 50)


def test_acquire_returns_a_new_limiter_and_leaves_the_old_one_alone() -> None:
    empty = ConcurrencyLimiter()
    held = empty.acquire_session("s1")
    assert held.holds_session("s1")
    assert not empty.holds_session("s1")


def test_acquiring_a_held_session_again_is_a_no_op() -> None:
    held = ConcurrencyLimiter(max_sessions=1).acquire_session("s1")
    assert held.acquire_session("s1") is held
    assert held.active_sessions == 1


def test_session_limit_raises_max_sessions_exceeded_naming_limit_and_active() -> None:
    full = limiter(max_sessions=2).acquire_session("s1").acquire_session("s2")
    with pytest.raises(ConcurrencyError) as caught:
        full.acquire_session("s3")
    assert caught.value.code == "max_sessions_exceeded"
    assert caught.value.details["limit"] == 2
    assert caught.value.details["active"] == 2
    assert "2 active, limit 2" in caught.value.message


def test_run_limit_is_global_across_sessions() -> None:
    lim = limiter(max_runs=2).acquire_session("s1").acquire_session("s2")
    lim = lim.acquire_run("s1", "r1").acquire_run("s2", "r2")
    with pytest.raises(ConcurrencyError) as caught:
        lim.acquire_run("s2", "r3")
    assert caught.value.code == "max_runs_exceeded"
    assert (caught.value.details["limit"], caught.value.details["active"]) == (2, 2)


def test_acquiring_a_held_run_again_is_a_no_op() -> None:
    lim = limiter(max_runs=1).acquire_session("s1").acquire_run("s1", "r1")
    assert lim.acquire_run("s1", "r1") is lim


def test_a_run_needs_its_session_slot() -> None:
    with pytest.raises(ResourceError) as caught:
        ConcurrencyLimiter().acquire_run("s1", "r1")
    assert caught.value.code == "session_not_found"


def test_a_run_held_by_another_session_is_already_exists() -> None:
    lim = ConcurrencyLimiter().acquire_session("s1").acquire_session("s2").acquire_run("s1", "r1")
    with pytest.raises(ResourceError) as caught:
        lim.acquire_run("s2", "r1")
    assert caught.value.code == "already_exists"
    assert caught.value.details["owner"] == "s1"


def test_releasing_a_session_releases_its_runs() -> None:
    lim = ConcurrencyLimiter().acquire_session("s1").acquire_session("s2")
    lim = lim.acquire_run("s1", "r1").acquire_run("s1", "r2").acquire_run("s2", "r3")
    after = lim.release_session("s1")
    assert not after.holds_session("s1")
    assert not after.holds_run("r1") and not after.holds_run("r2")
    assert after.holds_run("r3")
    assert after.active_runs == 1


def test_releasing_a_run_frees_its_slot_for_another() -> None:
    lim = limiter(max_runs=1).acquire_session("s1").acquire_run("s1", "r1")
    lim = lim.release_run("r1").acquire_run("s1", "r2")
    assert lim.holds_run("r2") and not lim.holds_run("r1")


def test_releasing_a_session_frees_its_slot_for_another() -> None:
    lim = limiter(max_sessions=1).acquire_session("s1").release_session("s1")
    assert lim.acquire_session("s2").holds_session("s2")


def test_releasing_unknown_ids_is_a_no_op() -> None:
    lim = ConcurrencyLimiter().acquire_session("s1")
    assert lim.release_session("nope") is lim
    assert lim.release_run("nope") is lim


def test_status_reports_available_slots() -> None:
    lim = limiter(max_sessions=3, max_runs=5).acquire_session("s1").acquire_run("s1", "r1")
    assert lim.status() == LimiterStatus(
        max_sessions=3,
        max_runs=5,
        active_sessions=1,
        active_runs=1,
        available_sessions=2,
        available_runs=4,
    )


def test_none_means_unlimited() -> None:
    lim = limiter(max_sessions=None, max_runs=None)
    for i in range(300):
        lim = lim.acquire_session(f"s{i}").acquire_run(f"s{i}", f"r{i}")
    status = lim.status()
    assert (status.active_sessions, status.active_runs) == (300, 300)
    assert (status.available_sessions, status.available_runs) == (None, None)


def test_a_zero_limit_admits_nothing() -> None:
    with pytest.raises(ConcurrencyError):
        limiter(max_sessions=0).acquire_session("s1")


def test_a_limit_below_current_use_shows_no_slots_left() -> None:
    lim = ConcurrencyLimiter().acquire_session("s1").acquire_session("s2")
    lowered = lim.model_copy(update={"max_sessions": 1})
    assert lowered.status().available_sessions == 0


def test_session_of_names_the_owner_of_a_run() -> None:
    lim = ConcurrencyLimiter().acquire_session("s1").acquire_run("s1", "r1")
    assert lim.session_of("r1") == "s1"
    assert lim.session_of("r2") is None


def test_limiter_state_survives_a_json_round_trip() -> None:
    lim = ConcurrencyLimiter(max_runs=None).acquire_session("s1").acquire_run("s1", "r1")
    assert ConcurrencyLimiter.model_validate_json(lim.model_dump_json()) == lim


def test_a_loaded_state_with_one_run_in_two_sessions_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        ConcurrencyLimiter(sessions={"s1": ("r1",), "s2": ("r1",)})
    assert caught.value.details == {"runs": ["r1"]}
