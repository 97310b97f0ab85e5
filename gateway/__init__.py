"""The HTTP/SSE gateway (``asm serve``): sessions, runs and live events for web and mobile
frontends, with API keys bound to tenants, and a live web view.

Needs the ``gateway`` extra (FastAPI, uvicorn); nothing else imports it except the CLI, which
does so only when ``asm serve`` runs, so a client-only install works without the extra.
"""

from agent_session_manager.gateway.app import create_app
from agent_session_manager.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
