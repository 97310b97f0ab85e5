"""The client side: :class:`SessionClient` (async Python API) and the ``asm`` CLI."""

from agent_session_manager.client.session_client import (
    Reset,
    SessionClient,
    SessionListing,
    TextDelta,
)

__all__ = ["Reset", "SessionClient", "SessionListing", "TextDelta"]
