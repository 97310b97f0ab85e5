"""agent-session-manager: durable agent sessions, runs and events on Temporal.

The public API lives here; each concept is in one subpackage:

* ``agent_session_manager.core`` the pure domain and the Temporal contract
* ``agent_session_manager.client`` :class:`SessionClient`, the async Python API
* ``agent_session_manager.store`` the SQL event store
* ``agent_session_manager.workflows`` / ``.activities`` / ``.worker`` the engine
* ``agent_session_manager.cli`` the ``asm`` command line

The names below load on first use (PEP 562): the workflow sandbox re-imports the parent
package of every workflow module on every run, so ``import agent_session_manager.workflows``
must not drag in the client and the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_session_manager.client import (
        Outage,
        Patience,
        Reset,
        SessionClient,
        SessionListing,
        TextDelta,
        ThinkingDelta,
    )
    from agent_session_manager.core import (
        AsmError,
        Capability,
        Event,
        EventType,
        MockScript,
        RunRef,
        RunRequest,
        RunResult,
        RunStatus,
        RunView,
        SessionSpec,
        SessionStatus,
        SessionSummary,
        SessionView,
        TokenUsage,
    )

#: public name -> the subpackage it comes from.
_ORIGIN = {
    **dict.fromkeys(
        [
            "Outage",
            "Patience",
            "Reset",
            "SessionClient",
            "SessionListing",
            "TextDelta",
            "ThinkingDelta",
        ],
        "client",
    ),
    **dict.fromkeys(
        [
            "AsmError",
            "Capability",
            "Event",
            "EventType",
            "MockScript",
            "RunRef",
            "RunRequest",
            "RunResult",
            "RunStatus",
            "RunView",
            "SessionSpec",
            "SessionStatus",
            "SessionSummary",
            "SessionView",
            "TokenUsage",
        ],
        "core",
    ),
}

__all__ = [
    "AsmError",
    "Capability",
    "Event",
    "EventType",
    "MockScript",
    "Outage",
    "Patience",
    "Reset",
    "RunRef",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "RunView",
    "SessionClient",
    "SessionListing",
    "SessionSpec",
    "SessionStatus",
    "SessionSummary",
    "SessionView",
    "TextDelta",
    "ThinkingDelta",
    "TokenUsage",
]


def __getattr__(name: str) -> Any:
    origin = _ORIGIN.get(name)
    if origin is None:
        raise AttributeError(f"module 'agent_session_manager' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"agent_session_manager.{origin}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
