"""The web view (static HTML and vanilla JS under ``/ui/``, no build step) and how it signs
in: ``POST /v1/login`` trades a key for an HttpOnly, SameSite=Strict cookie, because an
``EventSource`` cannot send an ``Authorization`` header and a key in a URL lands in logs."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from agent_session_manager.gateway.auth import COOKIE
from agent_session_manager.gateway.deps import Caller, Parts
from agent_session_manager.gateway.errors import unauthenticated
from agent_session_manager.gateway.models import Login, Whoami

STATIC = Path(__file__).parent / "static"

router = APIRouter(tags=["web view"])


@router.get("/", include_in_schema=False)
async def index() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.post("/v1/login", response_model=Whoami)
async def login(body: Login, response: Response, gw: Parts) -> Whoami:
    """Check a key and set it as the web view's cookie."""
    found = await gw.auth.lookup(body.key)
    if found is None:
        raise unauthenticated("the API key is unknown or revoked")
    gw.auth.spend(found.key_id)
    response.set_cookie(
        COOKIE,
        body.key,
        httponly=True,
        samesite="strict",
        secure=gw.settings.cookie_secure,
        path="/",
    )
    return Whoami(key_id=found.key_id, tenant=found.tenant)


@router.post("/v1/logout", status_code=204)
async def logout(response: Response) -> None:
    """Forget the web view's cookie."""
    response.delete_cookie(COOKIE, path="/")


@router.get("/v1/whoami", response_model=Whoami)
async def whoami(caller: Caller) -> Whoami:
    """The key's id and tenant."""
    return Whoami(key_id=caller.key_id, tenant=caller.tenant)
