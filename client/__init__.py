"""The client side: :class:`SessionClient`, the async Python API, and the audit log reader;
:class:`Patience` says how its waiting calls ride out outages."""

from agent_session_manager.client.outages import Outage, Patience
from agent_session_manager.client.session_client import (
    Reset,
    SessionClient,
    SessionListing,
    TextDelta,
)

__all__ = ["Outage", "Patience", "Reset", "SessionClient", "SessionListing", "TextDelta"]
