"""Capabilities a provider offers, and negotiation against them.

Matching is by capability *type* over *enabled* capabilities only. A missing required type
fails fast with ``missing_required_capability`` naming every missing type, sorted; missing
optional types degrade the run with one warning each. The result never depends on the order
capabilities are listed in.

Stricter than the seed: a capability type given as text is checked (``invalid_capability_type``)
wherever it enters (:class:`Capability`, :class:`CapabilityResolver`,
:func:`parse_capability_type`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_session_manager.core.errors import StateError

CapabilityType = Literal[
    "sampling",
    "tool",
    "resource",
    "prompt",
    "file_access",
    "network_access",
    "code_execution",
]
"""The seven kinds of capability a provider can offer."""

#: Every capability type, in declaration order.
CAPABILITY_TYPES: tuple[CapabilityType, ...] = (
    "sampling",
    "tool",
    "resource",
    "prompt",
    "file_access",
    "network_access",
    "code_execution",
)


def parse_capability_type(value: str) -> CapabilityType:
    """``value`` as a :data:`CapabilityType`, or ``invalid_capability_type`` naming them all."""
    if value in CAPABILITY_TYPES:
        return value
    raise StateError(
        "invalid_capability_type",
        f"unknown capability type {value!r}; valid: {', '.join(CAPABILITY_TYPES)}",
        details={"type": value, "valid": list(CAPABILITY_TYPES)},
    )


class Capability(BaseModel):
    """One thing a provider can do, e.g. ``Capability(name="tool_use", type="tool")``."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    type: CapabilityType
    enabled: bool = True
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    permissions: list[str] = Field(default_factory=list)

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, v: Any) -> Any:
        # Our error rather than pydantic's literal_error, so callers branch on one code.
        return parse_capability_type(v) if isinstance(v, str) else v


class Negotiation(BaseModel):
    """Outcome of a successful negotiation: ``full``, or ``degraded`` with warnings."""

    status: Literal["full", "degraded"]
    available: list[CapabilityType] = Field(default_factory=list)
    missing_optional: list[CapabilityType] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class CapabilityResolver:
    """Negotiates required and optional capability types against what a provider offers."""

    def __init__(
        self,
        required: list[CapabilityType] | tuple[CapabilityType, ...] = (),
        optional: list[CapabilityType] | tuple[CapabilityType, ...] = (),
    ) -> None:
        self.required: frozenset[CapabilityType] = frozenset(
            parse_capability_type(t) for t in required
        )
        # A type both required and optional is required: the stronger claim wins.
        self.optional: frozenset[CapabilityType] = (
            frozenset(parse_capability_type(t) for t in optional) - self.required
        )

    def __repr__(self) -> str:
        return (
            f"CapabilityResolver(required={sorted(self.required)}, "
            f"optional={sorted(self.optional)})"
        )

    def negotiate(self, capabilities: Iterable[Capability]) -> Negotiation:
        """``full`` / ``degraded``, or raise ``missing_required_capability``."""
        available = {c.type for c in capabilities if c.enabled}
        missing_required = sorted(self.required - available)
        if missing_required:
            raise StateError(
                "missing_required_capability",
                f"provider lacks required capability types: {', '.join(missing_required)}",
                details={"missing": missing_required, "available": sorted(available)},
            )
        missing_optional = sorted(self.optional - available)
        return Negotiation(
            status="degraded" if missing_optional else "full",
            available=sorted(available),
            missing_optional=missing_optional,
            warnings=[f"optional capability type {t} is not available" for t in missing_optional],
        )
