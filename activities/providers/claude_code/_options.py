"""The ``claude-code`` provider's ``provider_options``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, field_validator

from agent_session_manager.activities.providers.agent_cli import AgentCliOptions

#: ``bypassPermissions`` is refused by the CLI when it runs as root.
PermissionMode = Literal["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto"]
SettingSource = Literal["user", "project", "local"]
PermissionDecision = Literal["allow", "deny", "ask"]


class ClaudeCodeOptions(AgentCliOptions):
    """``working_directory`` (required), ``state_dir`` and ``model``, plus Claude Code's own."""

    allowed_tools: list[str] = []
    """A list of tool names, or one comma-separated string."""
    disallowed_tools: list[str] = []
    permission_mode: PermissionMode | None = None
    permission_decision: PermissionDecision | None = None
    """How the CLI's permission requests (tools its ``permission_mode`` and ``allowed_tools``
    do not already allow) are answered: ``allow`` / ``deny`` at once, ``ask`` a human through
    the run's ``approve`` / ``deny`` (a session's ``tool_policies`` per tool name, e.g.
    ``Bash``, win). ``None``: the CLI's own permission mode decides, as before."""
    approval_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """How long an ``ask`` waits for a human before it resolves as denied."""
    # Strict: True is not 1 turn, and 2.5 turns is a mistake to report, not to round.
    max_turns: Annotated[StrictInt, Field(ge=1)] | None = None
    setting_sources: list[SettingSource] | None = None
    api_timeout_seconds: Annotated[float, Field(allow_inf_nan=False)] | None = None
    experimental_betas: bool = False
    """Without it the CLI answers any 400 by re-sending with fewer beta headers."""
    claude_home: str | None = None
    """The session's ``HOME``; else ``<state_dir>/claude-code/<session id>``."""

    @field_validator("allowed_tools", "disallowed_tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list) and all(isinstance(t, str) for t in value):
            return [t.strip() for t in value if t.strip()]
        raise ValueError("must be a list of tool names")

    def api_timeout_ms(self) -> int | None:
        """The API timeout in the CLI's unit, at least 1 ms."""
        seconds = self.api_timeout_seconds
        return None if seconds is None else max(1, int(seconds * 1000))
