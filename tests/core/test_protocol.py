"""Every wire name is spelled once, in ``core/protocol.py``; everything else refers to it."""

from __future__ import annotations

import ast
from pathlib import Path

from agent_session_manager.core import protocol

REPO = Path(__file__).resolve().parents[2]
#: The product packages (tests and bench may spell names: they check the wire).
PRODUCT = ("core", "store", "observability", "workflows", "activities", "worker", "client", "cli")

#: Temporal calls whose first argument or ``name=`` is a workflow, update, signal, query or
#: activity name: a string literal there is a wire name spelled outside the protocol module.
NAMED_CALLS = frozenset(
    {
        "defn",
        "update",
        "signal",
        "query",
        "execute_update",
        "start_update",
        "execute_local_activity",
        "start_local_activity",
        "execute_activity",
        "start_activity",
        "start_child_workflow",
        "execute_child_workflow",
        "start_workflow",
        "execute_workflow",
        "signal_with_start",
        "get_external_workflow_handle_for",
    }
)


def _wire_names() -> dict[str, str]:
    return {
        value: name
        for name, value in vars(protocol).items()
        if name.isupper() and isinstance(value, str)
    }


def _product_files() -> list[Path]:
    files = [p for pkg in PRODUCT for p in sorted((REPO / pkg).rglob("*.py"))]
    return [p for p in files if p != REPO / "core" / "protocol.py"]


def test_the_protocol_module_names_every_wire_name_once() -> None:
    names = [v for k, v in vars(protocol).items() if k.isupper() and isinstance(v, str)]
    # cancel_run is one name for an update and a signal; every other value is distinct.
    assert sorted(names) == sorted(set(names))
    assert {"AgentSession", "AgentRun", "agent-sessions", "submit_run", "describe"} <= set(names)


def test_no_wire_name_is_a_string_literal_in_a_temporal_call_outside_the_protocol() -> None:
    offences: list[str] = []
    for path in _product_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in NAMED_CALLS:
                continue
            candidates = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "name")]
            for arg in candidates:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    offences.append(f"{path.relative_to(REPO)}:{node.lineno} {arg.value!r}")
    assert offences == []


def test_distinctive_wire_names_appear_nowhere_else_as_string_literals() -> None:
    # Names too common to search for ("cancel", "pause", "describe"…) are covered by the call
    # check above; these cannot be anything but a wire name.
    distinctive = {v for v in _wire_names() if "_" in v or "-" in v or v[0].isupper()}
    offences: list[str] = []
    for path in _product_files():
        tree = ast.parse(path.read_text(), str(path))
        exported = {  # ``__all__ = ["AgentSession"]`` names a class, not the wire
            id(c)
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and any(getattr(t, "id", "") == "__all__" for t in n.targets)
            for c in ast.walk(n.value)
        }
        for node in ast.walk(tree):
            if id(node) in exported:
                continue
            if isinstance(node, ast.Constant) and node.value in distinctive:
                offences.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert offences == []
