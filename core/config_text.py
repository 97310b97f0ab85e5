"""Configuration given as text (an environment variable or a file): JSON or TOML validated by a
pydantic model, with one way of saying what is wrong.

Every such setting (``ASM_LIMITS``, ``ASM_LIMITS_FILE``, ``ASM_BUDGETS``) goes through
:func:`parse_config`, so the worker and every CLI command read it alike: blank is none (the
model's defaults; compose passes ``${X:-}``), anything else is the model or the
``validation_error`` naming where it came from and what to write instead.
"""

from __future__ import annotations

import json
import tomllib
from typing import Literal, TypeVar

from pydantic import BaseModel

from agent_session_manager.core.errors import ValidationError

M = TypeVar("M", bound=BaseModel)


def parse_config(
    model: type[M],
    text: str | None,
    origin: str,
    *,
    expected: str,
    syntax: Literal["json", "toml"] = "json",
) -> M:
    """``model`` from ``text`` (``None`` or blank: the defaults); a ``validation_error`` naming
    ``origin`` (the variable or file) and saying what was ``expected`` otherwise."""
    if text is None or not text.strip():
        return model()
    try:
        data = tomllib.loads(text) if syntax == "toml" else json.loads(text)
        return model.model_validate(data)
    # json, tomllib and pydantic errors are ValueErrors; a deeply nested document recurses.
    except (ValueError, RecursionError) as exc:
        raise ValidationError(
            "validation_error",
            f"{origin} is not valid: {str(exc)[:2000]}; expected {expected}",
            details={"origin": origin},
        ) from None


__all__ = ["parse_config"]
