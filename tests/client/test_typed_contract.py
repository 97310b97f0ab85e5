"""The client's side of the typed contract: no ``Any`` escapes ``SessionClient``.

That no wire name is spelled outside ``core/protocol.py`` is checked for every package in
``tests/core/test_protocol.py``.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

from agent_session_manager.client.audit import AuditEntry
from agent_session_manager.client.session_client import SessionClient

ROOT = Path(__file__).resolve().parents[2]


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
