"""The client's side of the typed contract: handlers by method reference, no ``Any`` escaping."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path
from typing import Any

from agent_session_manager.client.audit import AuditEntry
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core import protocol

ROOT = Path(__file__).resolve().parents[2]

#: Update, signal and query names: every protocol name but the task queue, workflow types and
#: activities.
HANDLER_NAMES = {
    value
    for name, value in vars(protocol).items()
    if name.isupper()
    and isinstance(value, str)
    and name != "DEFAULT_TASK_QUEUE"
    and not name.endswith(("_WORKFLOW", "_ACTIVITY"))
}


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_the_handler_names_are_known() -> None:
    assert {"submit_run", "describe", "cancel", "cancel_run", "complete"} <= HANDLER_NAMES


def test_client_and_cli_spell_no_update_signal_or_query_name() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} {value!r}"
        for folder in ("client", "cli")
        for path in sorted((ROOT / folder).glob("*.py"))
        for line, value in _string_literals(path)
        if value in HANDLER_NAMES
    ]
    assert found == []


def _mentions_any(tp: object) -> bool:
    return tp is Any or any(_mentions_any(arg) for arg in typing.get_args(tp))


def test_no_any_escapes_the_public_methods_of_session_client() -> None:
    leaks = []
    for name, method in inspect.getmembers(SessionClient, inspect.isfunction):
        if name.startswith("_"):
            continue
        hints = typing.get_type_hints(method, localns={"AuditEntry": AuditEntry})
        leaks += [f"{name}({param})" for param, tp in hints.items() if _mentions_any(tp)]
    assert leaks == []
