"""Reading a run's ``provider_options`` into a provider's options model.

Every provider declares one pydantic model in its ``_options`` module; :func:`parse_options`
is the one place a bad option becomes ``invalid_input`` (not retried: a retry would meet the
same options). Models ignore keys they do not know: a session's ``provider_options`` may carry
keys meant for another layer, and rejecting them would fail runs that work today.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic

from agent_session_manager.core.errors import AsmError, error

_Options = TypeVar("_Options", bound=pydantic.BaseModel)


def parse_options(model: type[_Options], options: Mapping[str, Any], provider: str) -> _Options:
    """``options`` as ``model``, or ``invalid_input`` naming the first bad option."""
    try:
        return model.model_validate(dict(options))
    except pydantic.ValidationError as exc:
        raise invalid_options(exc, provider) from None


def invalid_options(exc: pydantic.ValidationError, provider: str) -> AsmError:
    """``invalid_input`` for a failed options model: which option, and why."""
    first = exc.errors(include_url=False)[0]
    option = ".".join(str(part) for part in first["loc"]) or "provider_options"
    # A validator's own ValueError says it best; pydantic prefixes it with "Value error, ".
    reason = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
    return error(
        "invalid_input",
        f"{provider}: provider_options.{option}: {reason}",
        details={"provider": provider, "option": option},
    )
