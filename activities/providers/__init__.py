"""Provider discovery: every provider installed on this worker, by name.

The built-in providers (``mock``, ``anthropic``, ``codex``, ``claude-code``) and third-party
adapters alike register a class (or zero-argument factory) in the
``agent_session_manager.providers`` entry-point group; :func:`discover` loads them all. Each
built-in is a package with the same private modules — ``_provider`` (the class), ``_options``
(its one options model), ``_errors`` (foreign exceptions → taxonomy), ``_events`` (provider
events → normalized events), ``_transport`` (HTTP client or child process) and, for the agent
CLIs, ``_session`` (continuity between runs) — so a reader who knows one knows all.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from agent_session_manager.activities.providers.base import Provider

ENTRY_POINT_GROUP = "agent_session_manager.providers"

_log = logging.getLogger(__name__)


def discover() -> dict[str, Provider]:
    """Every provider installed: the entry-point group, by provider name."""
    found: dict[str, Provider] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            provider = ep.load()()
        except Exception as exc:  # a broken third-party adapter must not take the worker down
            _log.warning("provider %s failed to load: %s", ep.name, exc)
            continue
        found[provider.name] = provider
    if "mock" not in found:  # running from a checkout without the package installed
        from agent_session_manager.activities.providers.mock import MockProvider

        found["mock"] = MockProvider()
    return found


__all__ = ["ENTRY_POINT_GROUP", "discover"]
