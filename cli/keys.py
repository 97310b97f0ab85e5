"""``asm keys create|ls|revoke``: the HTTP gateway's API keys, each bound to a tenant.

A key is shown once, when created: the store keeps only its SHA-256 (see ``store._tenancy``).
These commands open the event store only; no Temporal server is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from agent_session_manager.cli.options import current, shared
from agent_session_manager.cli.output import err, out, print_json
from agent_session_manager.cli.project import find_project, require_store
from agent_session_manager.store import ApiKey, EventStore, open_store

app = typer.Typer(help="API keys of the HTTP gateway (asm serve).", no_args_is_help=True)

T = TypeVar("T")


def with_store(fn: Callable[[EventStore], Awaitable[T]]) -> T:
    """Run ``fn`` on the project's event store (found from any subdirectory; a missing SQLite
    store is refused, not created). Errors are printed by ``asm``'s one error path (exit 1,
    75 when the store is unreachable)."""
    project = find_project()
    require_store(project)

    async def main() -> T:
        store = await open_store(project.database_url)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _as_dict(key: ApiKey) -> dict[str, object]:
    return {**key.model_dump(mode="json"), "active": key.active}


@app.command()
@shared(connects=False)
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant the key acts for")],
    name: Annotated[str, typer.Option("--name", help="what the key is for")] = "",
) -> None:
    """Create a key for a tenant and print it (once: only its hash is kept)."""
    listing, key = with_store(lambda s: s.create_api_key(tenant, name))
    if current.json:
        print_json({**_as_dict(listing), "key": key})
        return
    print(key)
    err.print(
        f"key {listing.key_id} for tenant {listing.tenant}: store it now, it is not shown again "
        f"(revoke with `asm keys revoke {listing.key_id}`)",
        highlight=False,
    )


@app.command("ls")
@shared(connects=False)
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's")] = None,
) -> None:
    """List keys (never their secrets), active and revoked."""
    keys = with_store(lambda s: s.api_keys(tenant))
    if current.json:
        print_json([_as_dict(k) for k in keys])
        return
    table = Table()
    for col in ("key id", "tenant", "name", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(
            k.key_id,
            k.tenant,
            k.name,
            k.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "",
        )
    out.print(table)


@app.command()
@shared(connects=False)
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id, from `asm keys ls`")],
) -> None:
    """Revoke a key: gateways refuse it within ASM_GATEWAY_KEY_CACHE_SECONDS (default 5 s)."""
    key = with_store(lambda s: s.revoke_api_key(key_id))
    if current.json:
        print_json(_as_dict(key))
    else:
        out.print(f"revoked {key.key_id} (tenant {key.tenant})", highlight=False)
