"""The client side: :class:`SessionClient`, the async Python API, and the audit log reader."""

from agent_session_manager.client.session_client import (
    Reset,
    SessionClient,
    SessionListing,
    TextDelta,
)

__all__ = ["Reset", "SessionClient", "SessionListing", "TextDelta"]
