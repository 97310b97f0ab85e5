"""The client side: :class:`SessionClient`, the async Python API (:meth:`SessionClient.connect`
builds one from the environment, :mod:`client.connect` says how), and the audit log reader;
:class:`Patience` says how its waiting calls ride out outages."""

from agent_session_manager.client.connect import ConnectionSettings, resolve
from agent_session_manager.client.outages import Outage, Patience
from agent_session_manager.client.session_client import (
    Reset,
    SessionClient,
    SessionListing,
    TextDelta,
    TextPiece,
    ThinkingDelta,
)

__all__ = [
    "ConnectionSettings",
    "Outage",
    "Patience",
    "Reset",
    "SessionClient",
    "SessionListing",
    "TextDelta",
    "TextPiece",
    "ThinkingDelta",
    "resolve",
]
