"""The ASGI application: :func:`create_app` over an injected :class:`SessionClient` and
event store (``asm serve`` builds them from the environment; tests inject their own).

Routers, one per concept: :mod:`.sessions`, :mod:`.runs`, :mod:`.approvals` (the agent loop's
approvals and client-side tool results), :mod:`.events`, :mod:`.web`. A new one is a module
with an ``APIRouter`` under ``/v1/sessions/{session_id}/…`` whose endpoints take
``OwnedSession`` (the tenancy check), added to :data:`ROUTERS`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from agent_session_manager.client import SessionClient
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.gateway import approvals, events, runs, sessions, web
from agent_session_manager.gateway.auth import UI_HEADER, Authenticator
from agent_session_manager.gateway.body_limit import BodyLimit, BodyTooLarge
from agent_session_manager.gateway.deps import Gateway
from agent_session_manager.gateway.errors import install, response
from agent_session_manager.gateway.models import Health
from agent_session_manager.gateway.settings import GatewaySettings
from agent_session_manager.store import EventStore

ROUTERS: tuple[APIRouter, ...] = (
    sessions.router,
    runs.router,
    approvals.router,
    events.router,
    web.router,
)


def create_app(
    client: SessionClient, store: EventStore, settings: GatewaySettings | None = None
) -> FastAPI:
    """The gateway over ``client`` (Temporal) and ``store`` (events, keys, tenants)."""
    settings = settings or GatewaySettings()
    app = FastAPI(
        title="agent-session-manager gateway",
        version="1",
        description="Sessions, runs and live events over HTTP and Server-Sent Events. "
        "Authenticate with `Authorization: Bearer <key>` (`asm keys create`). Errors are "
        '`{"error": {code, category, message, retryable, details}}` with the taxonomy code.',
    )
    app.state.gateway = Gateway(
        client=client, store=store, settings=settings, auth=Authenticator(store, settings)
    )
    install(app)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_request: Request, _exc: BodyTooLarge) -> JSONResponse:
        return response(
            error(
                "invalid_input",
                f"the request body is over {settings.max_body_bytes} bytes "
                "(ASM_GATEWAY_MAX_BODY_BYTES)",
            ),
            413,
        )

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health | JSONResponse:
        """Alive and able to read the event store (no key needed; says nothing else)."""
        try:
            await store.last_seq("healthz")
        except AsmError as exc:
            return response(exc, 503)
        return Health(status="ok")

    for router in ROUTERS:
        app.include_router(router)
    app.mount("/ui", StaticFiles(directory=web.STATIC, html=True), name="ui")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", UI_HEADER],
            max_age=600,
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
