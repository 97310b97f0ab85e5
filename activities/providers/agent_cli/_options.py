"""The agent CLIs' common options model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


class AgentCliOptions(BaseModel):
    """The ``provider_options`` every agent CLI takes; each provider's model extends it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    working_directory: Path
    """Required; must be an existing directory (a retry would meet the same directory)."""
    state_dir: str | None = None
    """Root of the sessions' CLI homes; else ``$XDG_STATE_HOME/agent-session-manager``."""
    model: str | None = None
    """Else the run's model, else the CLI's own default."""

    @model_validator(mode="before")
    @classmethod
    def _none_is_unset(cls, data: Any) -> Any:
        # A JSON null in provider_options means "use the default", as it always has.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @field_validator("working_directory", mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        if not str(value).strip():
            raise ValueError("required: the directory the agent works in")
        return Path(str(value)).expanduser()

    @field_validator("working_directory")
    @classmethod
    def _a_directory(cls, path: Path) -> Path:
        if not path.exists():
            raise ValueError(f"{str(path)!r} does not exist")
        if not path.is_dir():
            raise ValueError(f"{str(path)!r} is not a directory")
        return path.resolve()
