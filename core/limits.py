"""Cluster-wide concurrency limits as pure state: who holds a session slot or a run slot.

The limiter does no I/O and takes no locks: the engine that owns it (a workflow, or one
process) serializes calls. It is a frozen model, so it can be workflow state, carried across
continue-as-new, and every acquire or release returns a new limiter.

Rules:

* ``max_sessions`` / ``max_runs`` default to 100 / 50; ``None`` means unlimited;
* acquiring a slot already held is a no-op (the same limiter comes back), so a retried
  request cannot take two slots;
* the run limit is global, across sessions, and a run needs its session's slot (stricter
  than the seed, which let a run outlive the session that owned it);
* releasing a session releases its runs; releasing an unknown id is a no-op;
* at a limit: ``max_sessions_exceeded`` / ``max_runs_exceeded`` naming the limit and the
  active count.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_session_manager.core.errors import ConcurrencyError, ResourceError, ValidationError

#: Default session limit.
DEFAULT_MAX_SESSIONS = 100

#: Default run limit (across all sessions).
DEFAULT_MAX_RUNS = 50


class LimiterStatus(BaseModel):
    """A snapshot of the limiter: limits, slots in use and slots left (``None`` = unlimited)."""

    model_config = ConfigDict(frozen=True)

    max_sessions: int | None
    max_runs: int | None
    active_sessions: int
    active_runs: int
    available_sessions: int | None
    available_runs: int | None


class ConcurrencyLimiter(BaseModel):
    """Session and run slots under limits; every change returns a new limiter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_sessions: int | None = Field(default=DEFAULT_MAX_SESSIONS, ge=0)
    max_runs: int | None = Field(default=DEFAULT_MAX_RUNS, ge=0)
    sessions: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="session id -> its run ids, in acquisition order"
    )

    @model_validator(mode="after")
    def _runs_unique(self) -> ConcurrencyLimiter:
        # Only reachable by loading a hand-made state: the methods never build one.
        runs = [r for rs in self.sessions.values() for r in rs]
        if len(runs) != len(set(runs)):
            raise ValidationError(
                "invalid_input",
                "a run holds at most one slot",
                details={"runs": sorted({r for r in runs if runs.count(r) > 1})},
            )
        return self

    @property
    def active_sessions(self) -> int:
        """How many session slots are held."""
        return len(self.sessions)

    @property
    def active_runs(self) -> int:
        """How many run slots are held, across all sessions."""
        return sum(len(runs) for runs in self.sessions.values())

    def holds_session(self, session_id: str) -> bool:
        """Whether ``session_id`` holds a slot."""
        return session_id in self.sessions

    def holds_run(self, run_id: str) -> bool:
        """Whether ``run_id`` holds a slot."""
        return self.session_of(run_id) is not None

    def session_of(self, run_id: str) -> str | None:
        """The session whose slot ``run_id`` holds, if any."""
        for session_id, runs in self.sessions.items():
            if run_id in runs:
                return session_id
        return None

    def acquire_session(self, session_id: str) -> ConcurrencyLimiter:
        """A limiter with a slot for ``session_id``; ``max_sessions_exceeded`` at the limit."""
        if session_id in self.sessions:
            return self
        if self.max_sessions is not None and self.active_sessions >= self.max_sessions:
            raise ConcurrencyError(
                "max_sessions_exceeded",
                f"session limit reached: {self.active_sessions} active, limit {self.max_sessions}",
                details={
                    "limit": self.max_sessions,
                    "active": self.active_sessions,
                    "session_id": session_id,
                },
            )
        return self._with({**self.sessions, session_id: ()})

    def acquire_run(self, session_id: str, run_id: str) -> ConcurrencyLimiter:
        """A limiter with a slot for ``run_id`` of ``session_id``; ``max_runs_exceeded`` if full.

        The session must hold a slot (``session_not_found``); a run id held by another
        session is ``already_exists``.
        """
        owner = self.session_of(run_id)
        if owner == session_id:
            return self
        if owner is not None:
            raise ResourceError(
                "already_exists",
                f"run {run_id!r} already holds a slot for session {owner!r}",
                details={"run_id": run_id, "session_id": session_id, "owner": owner},
            )
        if session_id not in self.sessions:
            raise ResourceError(
                "session_not_found",
                f"session {session_id!r} holds no slot; acquire it before its runs",
                details={"session_id": session_id, "run_id": run_id},
            )
        if self.max_runs is not None and self.active_runs >= self.max_runs:
            raise ConcurrencyError(
                "max_runs_exceeded",
                f"run limit reached: {self.active_runs} active, limit {self.max_runs}",
                details={
                    "limit": self.max_runs,
                    "active": self.active_runs,
                    "session_id": session_id,
                    "run_id": run_id,
                },
            )
        return self._with({**self.sessions, session_id: (*self.sessions[session_id], run_id)})

    def release_session(self, session_id: str) -> ConcurrencyLimiter:
        """A limiter without ``session_id`` and its runs; unknown ids are a no-op."""
        if session_id not in self.sessions:
            return self
        return self._with({k: v for k, v in self.sessions.items() if k != session_id})

    def release_run(self, run_id: str) -> ConcurrencyLimiter:
        """A limiter without ``run_id``; unknown ids are a no-op."""
        owner = self.session_of(run_id)
        if owner is None:
            return self
        runs = tuple(r for r in self.sessions[owner] if r != run_id)
        return self._with({**self.sessions, owner: runs})

    def status(self) -> LimiterStatus:
        """Limits, slots held and slots left; a limit lowered below use shows 0 left."""
        return LimiterStatus(
            max_sessions=self.max_sessions,
            max_runs=self.max_runs,
            active_sessions=self.active_sessions,
            active_runs=self.active_runs,
            available_sessions=_left(self.max_sessions, self.active_sessions),
            available_runs=_left(self.max_runs, self.active_runs),
        )

    def _with(self, sessions: dict[str, tuple[str, ...]]) -> ConcurrencyLimiter:
        return self.model_copy(update={"sessions": sessions})


def _left(limit: int | None, active: int) -> int | None:
    return None if limit is None else max(limit - active, 0)
