"""The ``codex`` provider's ``provider_options``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from agent_session_manager.activities.providers.agent_cli import AgentCliOptions

SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]
ApprovalPolicy = Literal["never", "on-request", "untrusted"]
ApprovalDecision = Literal["decline", "accept", "ask"]
ReasoningSummary = Literal["auto", "concise", "detailed", "none"]


class CodexOptions(AgentCliOptions):
    """``working_directory`` (required), ``state_dir`` and ``model``, plus Codex's own."""

    sandbox: SandboxMode = "workspace-write"
    """Also accepted as ``sandbox_mode`` (Codex's own name for it)."""
    approval_policy: ApprovalPolicy = "never"
    approval_decision: ApprovalDecision = "decline"
    """How approval requests are answered: ``accept`` / ``decline`` at once, ``ask`` a human
    through the run's ``approve`` / ``deny`` (a session's ``tool_policies`` for
    ``command_execution`` / ``file_change`` win: ``always``, ``never``, ``ask``)."""
    approval_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """How long an ``ask`` waits for a human before it resolves as denied; ``None``: no bound
    but the run's own deadline."""
    reasoning_effort: str | None = None
    reasoning_summary: ReasoningSummary | None = None
    stream_idle_timeout_seconds: Annotated[float, Field(allow_inf_nan=False)] | None = None
    codex_home: str | None = None
    """The session's ``CODEX_HOME``; else ``<state_dir>/codex/<session id>``."""

    @model_validator(mode="before")
    @classmethod
    def _sandbox_mode(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("sandbox") is None and data.get("sandbox_mode"):
            data = {**data, "sandbox": data["sandbox_mode"]}
        return data

    def stream_idle_timeout_ms(self) -> int | None:
        """The idle timeout in the config's unit, at least 1 ms."""
        seconds = self.stream_idle_timeout_seconds
        return None if seconds is None else max(1, int(seconds * 1000))
