"""Configuration from the environment (``ASM_*``), shared by the worker, the client and the CLI.

Secrets (``ANTHROPIC_API_KEY`` …) are read by the worker only, handed to providers in
``ProviderRequest.secrets`` and never put into workflow payloads, history or events.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent_session_manager.core.budget import BudgetPolicy, parse_budgets
from agent_session_manager.core.errors import ValidationError, error
from agent_session_manager.core.limits import Limits, parse_limits
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
    #: When a provider attempt first heartbeats and the shortest interval between heartbeats
    #: (later ones back off to 0.5 s): it bounds how fast a cancel reaches a young attempt.
    heartbeat_throttle_seconds: float = 0.2
    prices_file: str | None = Field(
        default=None,
        description="a JSON price table merged over the shipped one (core/prices.json)",
    )
    #: The worker's budgets as JSON (``core.budget.BudgetPolicy``): per session, per agent per
    #: day, per tenant per day. Like ``limits``, the text is kept as given (``NoDecode``) and
    #: validated by :meth:`budget_policy` only.
    budgets: Annotated[BudgetPolicy | str | None, NoDecode] = None
    #: More tools for the worker, as ``module:attribute`` paths (a Tool, tools, or a factory);
    #: ``ASM_TOOLS='["pkg.tools:weather"]'``. Installed packages use the entry-point group.
    tools: list[str] = Field(default_factory=list)
    #: Fleet-wide limits as JSON (``ASM_LIMITS='{"max_runs": 5}'``), or a file (JSON or TOML).
    #: Kept as text here (``NoDecode``: pydantic-settings would otherwise decode the JSON once
    #: more, differently): a bad value fails only what uses limits, with the typed error of
    #: :meth:`fleet_limits`, not every command that reads the settings.
    limits: Annotated[Limits | str | None, NoDecode] = None
    limits_file: str | None = Field(default=None, description="a JSON or TOML file of limits")
    #: The worker's sticky cache (``max_cached_workflows``): sessions and running runs kept in
    #: memory between their workflow tasks. One that is not cached is replayed from its
    #: history on its next task (bounded by the session's replay budget). About 0.16 MB per
    #: cached session (10,000 cached: 1.8 GB of RSS; about 5,000 fit in 1 GB): see
    #: docs/architecture.md, "Performance" (0 disables the cache).
    max_cached_sessions: int = Field(default=1000, ge=0, le=1_000_000)

    def fleet_limits(self) -> Limits:
        """The deployment's limits: ``limits_file`` when set, else ``limits``; a bad value is
        the ``validation_error`` naming the variable (:func:`core.limits.parse_limits`)."""
        if self.limits_file:
            path = Path(self.limits_file)
            origin = f"ASM_LIMITS_FILE {str(path)!r}"
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, ValueError) as exc:  # unreadable, or not UTF-8
                raise ValidationError(
                    "validation_error",
                    f"{origin} cannot be read ({exc}); point it at a JSON or TOML file of "
                    "limits (see docs/limits.md) or unset it",
                    details={"origin": origin},
                ) from None
            return parse_limits(text, origin, toml=path.suffix == ".toml")
        if isinstance(self.limits, Limits):
            return self.limits
        return parse_limits(self.limits, "ASM_LIMITS")

    def budget_policy(self) -> BudgetPolicy:
        """The worker's budgets from ``budgets`` (none when unset); a bad value is the
        ``validation_error`` naming ``ASM_BUDGETS`` (:func:`core.budget.parse_budgets`)."""
        if isinstance(self.budgets, BudgetPolicy):
            return self.budgets
        return parse_budgets(self.budgets, "ASM_BUDGETS")

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
