"""Capabilities and their negotiation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_session_manager.core.capabilities import (
    CAPABILITY_TYPES,
    Capability,
    CapabilityResolver,
    CapabilityType,
    Negotiation,
    parse_capability_type,
)
from agent_session_manager.core.errors import StateError

PROPERTY = settings(database=None, deadline=None, max_examples=200)


def cap(name: str, type: CapabilityType, enabled: bool = True) -> Capability:
    return Capability(name=name, type=type, enabled=enabled)


# --- capability types ---------------------------------------------------------------------


def test_capability_types_are_the_seven_of_the_design() -> None:
    assert set(CAPABILITY_TYPES) == {
        "sampling",
        "tool",
        "resource",
        "prompt",
        "file_access",
        "network_access",
        "code_execution",
    }


@pytest.mark.parametrize("value", CAPABILITY_TYPES)
def test_parse_capability_type_accepts_every_type(value: str) -> None:
    assert parse_capability_type(value) == value


def test_parse_unknown_capability_type_is_invalid_capability_type() -> None:
    with pytest.raises(StateError) as caught:
        parse_capability_type("telepathy")
    assert caught.value.code == "invalid_capability_type"
    assert caught.value.details["valid"] == list(CAPABILITY_TYPES)


def test_capability_with_an_unknown_type_string_is_invalid_capability_type() -> None:
    with pytest.raises(StateError) as caught:
        Capability.model_validate({"name": "x", "type": "telepathy"})
    assert caught.value.code == "invalid_capability_type"


def test_capability_defaults_to_enabled_with_empty_config_and_permissions() -> None:
    c = cap("t", "tool")
    assert (c.enabled, c.config, c.permissions, c.description) == (True, {}, [], None)


# --- negotiation --------------------------------------------------------------------------


def test_all_required_and_optional_present_is_full() -> None:
    result = CapabilityResolver(["sampling"], ["tool"]).negotiate(
        [cap("s", "sampling"), cap("t", "tool")]
    )
    assert result == Negotiation(status="full", available=["sampling", "tool"])


def test_missing_optional_types_degrade_with_one_warning_each() -> None:
    result = CapabilityResolver(["sampling"], ["tool", "file_access"]).negotiate(
        [cap("s", "sampling")]
    )
    assert result.status == "degraded"
    assert result.missing_optional == ["file_access", "tool"]
    assert len(result.warnings) == 2
    assert "file_access" in result.warnings[0] and "tool" in result.warnings[1]


def test_missing_required_types_fail_fast_naming_them_sorted() -> None:
    resolver = CapabilityResolver(["tool", "code_execution", "sampling"], ["prompt"])
    with pytest.raises(StateError) as caught:
        resolver.negotiate([cap("s", "sampling")])
    assert caught.value.code == "missing_required_capability"
    assert caught.value.details["missing"] == ["code_execution", "tool"]
    assert "code_execution, tool" in caught.value.message


def test_disabled_capabilities_do_not_count() -> None:
    with pytest.raises(StateError):
        CapabilityResolver(["tool"]).negotiate([cap("t", "tool", enabled=False)])


def test_matching_is_by_type_not_name() -> None:
    result = CapabilityResolver(["tool"]).negotiate([cap("anything", "tool")])
    assert result.status == "full"


def test_a_type_both_required_and_optional_counts_as_required() -> None:
    resolver = CapabilityResolver(["tool"], ["tool", "prompt"])
    assert resolver.optional == frozenset({"prompt"})
    with pytest.raises(StateError):
        resolver.negotiate([])


def test_nothing_required_nothing_optional_is_full_even_with_no_capabilities() -> None:
    assert CapabilityResolver().negotiate([]).status == "full"


def test_resolver_rejects_an_unknown_type_string() -> None:
    with pytest.raises(StateError) as caught:
        CapabilityResolver(["telepathy"])  # type: ignore[list-item]
    assert caught.value.code == "invalid_capability_type"


CAPS = st.lists(
    st.builds(
        Capability,
        name=st.text(min_size=1, max_size=5),
        type=st.sampled_from(CAPABILITY_TYPES),
        enabled=st.booleans(),
    ),
    max_size=10,
)
TYPES = st.lists(st.sampled_from(CAPABILITY_TYPES), max_size=4)


@PROPERTY
@given(
    CAPS.flatmap(lambda caps: st.tuples(st.just(caps), st.permutations(caps))),
    TYPES.flatmap(lambda ts: st.tuples(st.just(ts), st.permutations(ts))),
    TYPES.flatmap(lambda ts: st.tuples(st.just(ts), st.permutations(ts))),
)
def test_negotiation_is_order_independent(
    caps: tuple[list[Capability], list[Capability]],
    required: tuple[list[CapabilityType], list[CapabilityType]],
    optional: tuple[list[CapabilityType], list[CapabilityType]],
) -> None:
    one = CapabilityResolver(required[0], optional[0])
    other = CapabilityResolver(required[1], optional[1])
    available = {c.type for c in caps[0] if c.enabled}
    if set(required[0]) - available:
        with pytest.raises(StateError) as first:
            one.negotiate(caps[0])
        with pytest.raises(StateError) as second:
            other.negotiate(caps[1])
        assert first.value.to_dict() == second.value.to_dict()
    else:
        assert one.negotiate(caps[0]) == other.negotiate(caps[1])
