"""Read models as the store returns them.

``SessionRow`` and ``RunRow`` are plain pydantic models (not ORM objects): they are safe to
hand across tasks, serialize to JSON for the CLI, and compare in tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.core.usage import TokenUsage


class SessionRow(BaseModel):
    """A session as ``asm session ls/show`` shows it."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    agent_id: str = ""
    provider: str = ""
    model: str | None = None
    status: SessionStatus = SessionStatus.PENDING
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    run_count: int = 0
    error: dict[str, Any] | None = None
    last_seq: int = Field(default=0, description="highest event seq of the session")
    created_at: datetime
    updated_at: datetime


class RunRow(BaseModel):
    """A run as ``asm session show`` and the client's ``get_run`` show it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    session_id: str
    turn: int = 0
    status: RunStatus = RunStatus.PENDING
    input_text: str | None = None
    input_messages: list[dict[str, Any]] = Field(default_factory=list)
    output: str | None = None
    stop_reason: str | None = None
    model: str | None = None
    provider: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    error: dict[str, Any] | None = None
    attempts: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    rolled_back: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
