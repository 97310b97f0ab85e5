"""Capabilities a provider offers, the manifests and registry that hold them, and negotiation.

Matching is by capability *type* over *enabled* capabilities only. A missing required type
fails fast with ``missing_required_capability`` naming every missing type, sorted; missing
optional types degrade the run with one warning each. The result never depends on the order
capabilities are listed in.

Stricter than the seed: a capability type given as text is checked (``invalid_capability_type``)
wherever it enters (:class:`Capability`, :class:`CapabilityResolver`,
:func:`parse_capability_type`), a manifest may not name two capabilities alike
(``duplicate_capability``), and the :class:`Registry` is immutable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_session_manager.core.errors import ResourceError, StateError

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


class Manifest(BaseModel):
    """What one provider (or agent) declares: identity and its capabilities, uniquely named."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    version: str = "0.0.0"
    description: str | None = None
    provider: str | None = None
    capabilities: tuple[Capability, ...] = ()
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Manifest:
        names = [c.name for c in self.capabilities]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ResourceError(
                "duplicate_capability",
                f"manifest {self.name!r} names capabilities twice: {', '.join(duplicates)}",
                details={"manifest": self.name, "duplicates": duplicates},
            )
        return self

    def capability(self, name: str) -> Capability:
        """The capability called ``name``, or ``capability_not_found``."""
        for cap in self.capabilities:
            if cap.name == name:
                return cap
        raise ResourceError(
            "capability_not_found",
            f"manifest {self.name!r} has no capability {name!r}",
            details={"manifest": self.name, "capability": name},
        )

    def enabled_types(self) -> frozenset[CapabilityType]:
        """The capability types this manifest offers enabled."""
        return frozenset(c.type for c in self.capabilities if c.enabled)


class Registry:
    """An immutable set of manifests by name; every change returns a new registry.

    Immutable so a workflow can hold one as state and replay cannot observe a mutation made
    elsewhere.
    """

    __slots__ = ("_manifests",)

    def __init__(self, manifests: Iterable[Manifest] = ()) -> None:
        by_name: dict[str, Manifest] = {}
        for manifest in manifests:
            if manifest.name in by_name:
                raise _exists(manifest.name)
            by_name[manifest.name] = manifest
        self._manifests: Mapping[str, Manifest] = MappingProxyType(dict(sorted(by_name.items())))

    def __repr__(self) -> str:
        return f"Registry({list(self._manifests)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Registry) and dict(self._manifests) == dict(other._manifests)

    def __hash__(self) -> int:
        return hash(tuple(self._manifests))

    def __len__(self) -> int:
        return len(self._manifests)

    def __contains__(self, name: object) -> bool:
        return name in self._manifests

    def __iter__(self) -> Iterator[Manifest]:
        return iter(self._manifests.values())

    def register(self, manifest: Manifest) -> Registry:
        """A registry with ``manifest`` added; ``already_exists`` if its name is taken."""
        if manifest.name in self._manifests:
            raise _exists(manifest.name)
        return Registry([*self._manifests.values(), manifest])

    def unregister(self, name: str) -> Registry:
        """A registry without ``name``; ``not_found`` if it is not registered."""
        self.get(name)
        return Registry(m for m in self._manifests.values() if m.name != name)

    def update(self, manifest: Manifest) -> Registry:
        """A registry with ``manifest`` replacing the one of its name; ``not_found`` if none."""
        self.get(manifest.name)
        return Registry(
            manifest if m.name == manifest.name else m for m in self._manifests.values()
        )

    def get(self, name: str) -> Manifest:
        """The manifest called ``name``, or ``not_found``."""
        try:
            return self._manifests[name]
        except KeyError:
            raise ResourceError(
                "not_found", f"no manifest named {name!r}", details={"manifest": name}
            ) from None

    def list(self) -> list[Manifest]:
        """Every manifest, sorted by name."""
        return list(self._manifests.values())

    def by_provider(self, provider: str) -> Registry:
        """The manifests whose ``provider`` is ``provider``."""
        return Registry(m for m in self._manifests.values() if m.provider == provider)

    def with_capability_type(self, capability_type: CapabilityType | str) -> Registry:
        """The manifests offering an *enabled* capability of ``capability_type``."""
        wanted = parse_capability_type(capability_type)
        return Registry(m for m in self._manifests.values() if wanted in m.enabled_types())


def _exists(name: str) -> ResourceError:
    return ResourceError(
        "already_exists", f"a manifest named {name!r} is registered", details={"manifest": name}
    )
