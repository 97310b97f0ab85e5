"""Configuration from the environment (``ASM_*``), shared by the worker, the client and the CLI.

Secrets (``ANTHROPIC_API_KEY`` …) are read by the worker only, handed to providers in
``ProviderRequest.secrets`` and never put into workflow payloads, history or events.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_session_manager.core.budget import BudgetPolicy, parse_budgets
from agent_session_manager.core.errors import ValidationError, error
from agent_session_manager.core.limits import Limits
from agent_session_manager.core.prices import PriceTable, default_prices, parse_prices
from agent_session_manager.core.protocol import (
    DEFAULT_TASK_QUEUE,
)
from agent_session_manager.store import DEFAULT_DATABASE_URL

#: Environment variables a provider may need; the worker passes exactly these through.
SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)


class Settings(BaseSettings):
    """Everything configurable; unset ``temporal_address`` means the embedded dev server."""

    # A blank variable (compose passes `${X:-}`) means unset: the default applies.
    model_config = SettingsConfigDict(env_prefix="ASM_", extra="ignore", env_ignore_empty=True)

    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal frontend; unset = embedded dev server"
    )
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "WARNING"
    log_format: str = "text"
    home: str = Field(default=".asm", description="where the embedded server and SQLite live")
    ui_url: str | None = Field(default=None, description="Temporal UI base URL for links")
    #: Heartbeats are throttled to this; it bounds how fast a cancel reaches a provider.
    heartbeat_throttle_seconds: float = 0.2
    prices_file: str | None = Field(
        default=None,
        description="a JSON price table merged over the shipped one (core/prices.json)",
    )
    budgets: str | None = Field(
        default=None,
        description="the worker's budgets as JSON (core.budget.BudgetPolicy): per session, "
        "per agent per day, per tenant per day",
    )
    #: More tools for the worker, as ``module:attribute`` paths (a Tool, tools, or a factory);
    #: ``ASM_TOOLS='["pkg.tools:weather"]'``. Installed packages use the entry-point group.
    tools: list[str] = Field(default_factory=list)
    #: Fleet-wide limits as JSON (``ASM_LIMITS='{"max_runs": 5}'``), or a file (JSON or TOML).
    #: Kept unvalidated here: a bad value fails what uses limits with a typed error
    #: (:meth:`fleet_limits`), not every command that reads the settings.
    limits: Limits | dict[str, Any] | str | None = Field(default_factory=Limits)
    limits_file: str | None = Field(default=None, description="a JSON or TOML file of limits")
    #: The worker's sticky cache (``max_cached_workflows``): sessions and running runs kept in
    #: memory between their workflow tasks. One that is not cached is replayed from its
    #: history on its next task (bounded by the session's replay budget). About 0.16 MB per
    #: cached session (10,000 cached: 1.8 GB of RSS; about 5,000 fit in 1 GB): see
    #: docs/architecture.md, "Performance" (0 disables the cache).
    max_cached_sessions: int = Field(default=1000, ge=0, le=1_000_000)

    def fleet_limits(self) -> Limits:
        """The deployment's limits: ``limits_file`` when set, else ``limits``; a bad value is
        ``invalid_input`` naming the setting."""
        if isinstance(self.limits, Limits) and not self.limits_file:
            return self.limits
        source, data = "ASM_LIMITS", self.limits if self.limits is not None else {}
        try:
            if isinstance(data, str):
                data = json.loads(data) if data.strip() else {}  # blank: none (compose's default)
            if self.limits_file:
                path = Path(self.limits_file)
                source = f"ASM_LIMITS_FILE {str(path)!r}"
                text = path.read_text(encoding="utf-8")
                data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
            return Limits.model_validate(data)
        except (OSError, ValueError) as exc:  # tomllib/json/pydantic errors are ValueErrors
            raise ValidationError(
                "invalid_input",
                f"{source} is not a valid limits configuration: {str(exc)[:500]} "
                "(see docs/limits.md)",
            ) from None

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_as_json(cls, v: object) -> object:
        # The environment's JSON list, also when handed over as text (compose's resolved value).
        if isinstance(v, str):
            try:
                return json.loads(v) if v.strip() else []
            except ValueError:
                raise ValueError(
                    "ASM_TOOLS must be a JSON list of module:attribute paths"
                ) from None
        return v

    @field_validator(
        "temporal_address",
        "ui_url",
        "prices_file",
        "budgets",
        "limits",
        "limits_file",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v


def provider_secrets() -> dict[str, str]:
    """The provider credentials present in this process's environment."""
    return {k: v for k in SECRET_ENV_VARS if (v := os.environ.get(k))}


def price_table(settings: Settings) -> PriceTable:
    """The shipped price table, with ``ASM_PRICES_FILE``'s models over it when set."""
    table = default_prices()
    if settings.prices_file is None:
        return table
    path = Path(settings.prices_file)
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(
            "validation_error",
            f"ASM_PRICES_FILE={settings.prices_file!r} cannot be read ({exc.strerror}); "
            "point it at a JSON price table or unset it",
            details={"path": settings.prices_file},
        ) from None
    return table.merged(parse_prices(text, f"ASM_PRICES_FILE={settings.prices_file!r}"))


def budget_policy(settings: Settings) -> BudgetPolicy:
    """The worker's budgets from ``ASM_BUDGETS`` (none when unset)."""
    if settings.budgets is None:
        return BudgetPolicy()
    return parse_budgets(settings.budgets, "ASM_BUDGETS")
