"""What every endpoint depends on: the gateway's parts, the caller, and the caller's session.

Tenancy is enforced here, once: :func:`owned_session` answers ``session_not_found`` (404) for
any id that is not the caller's tenant's — another tenant's, a malformed one, one that never
existed — with the same message, so a key learns nothing about ids it does not own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request

from agent_session_manager.client import SessionClient
from agent_session_manager.core.contract import check_id
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.gateway.auth import Authenticator, Principal
from agent_session_manager.gateway.settings import GatewaySettings
from agent_session_manager.store import EventStore


@dataclass
class Gateway:
    """One process's parts; nothing here is state a second gateway process would need."""

    client: SessionClient
    store: EventStore
    settings: GatewaySettings
    auth: Authenticator
    #: Open event streams per key in this process (a cap, not shared state).
    streams: dict[str, int] = field(default_factory=dict)


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


Parts = Annotated[Gateway, Depends(gateway)]


async def principal(request: Request, gw: Parts) -> Principal:
    return await gw.auth.principal(request)


Caller = Annotated[Principal, Depends(principal)]


def not_yours(session_id: str) -> AsmError:
    shown = session_id if len(session_id) <= 64 else session_id[:64] + "…"
    return error(
        "session_not_found",
        f"no session {shown!r} for this key: list yours with GET /v1/sessions",
        details={"session_id": shown},
    )


async def owned_session(
    session_id: Annotated[str, Path(description="a session id of the caller's tenant")],
    caller: Caller,
    gw: Parts,
) -> str:
    try:
        check_id(session_id)
    except ValueError:
        raise not_yours(session_id) from None
    if await gw.store.session_tenant(session_id) != caller.tenant:
        raise not_yours(session_id)
    return session_id


OwnedSession = Annotated[str, Depends(owned_session)]
