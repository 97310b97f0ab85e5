"""Inputs of the ownership claims: a session id belongs to one session workflow, a run id to
one session. The store enforces them (``store._ownership``); the session workflow claims
through local activities before it writes anything for the session or run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SessionClaim(BaseModel):
    """``owner`` claims ``session_id``: the workflow's first execution run id (kept across
    continue-as-new, new for every fresh start of a workflow id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str = Field(min_length=1, max_length=255)
    owner: str = Field(min_length=1, max_length=64)
    workflow_id: str = ""
    #: For the fleet-wide session limits (``core.limits``): who the session counts against.
    agent_id: str = Field(default="", max_length=255)
    tenant: str = Field(default="", max_length=64)


class RunClaim(BaseModel):
    """``session_id`` claims ``run_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1, max_length=255)
    session_id: str = Field(min_length=1, max_length=255)
