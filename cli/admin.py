"""Operations: ``asm db upgrade``, ``asm setup`` (prepare a cluster) and ``asm audit``."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Annotated

import typer
from temporalio.client import Client
from typer._click.exceptions import UsageError  # typer vendors click

from agent_session_manager.cli.options import current, json_alias, shared, validated
from agent_session_manager.cli.output import err, out, print_json
from agent_session_manager.cli.project import find_project, require_store
from agent_session_manager.cli.runtime import command_settings
from agent_session_manager.client.audit import (
    AuditEntry,
    audit_log,
    format_entry,
    parse_since,
    write_jsonl,
)
from agent_session_manager.core.errors import error
from agent_session_manager.core.events import EventType
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.connect import connect_temporal, connect_when_ready
from agent_session_manager.worker.dev_server import read_dev_record
from agent_session_manager.worker.setup import run_setup

db_app = typer.Typer(help="Event-store schema.", no_args_is_help=True)


@db_app.command("upgrade")
@shared(connects=False)
def db_upgrade() -> None:
    """Create or migrate the event store (ASM_DATABASE_URL, else the project's .asm/asm.db)."""
    url = find_project().database_url
    revision = asyncio.run(upgrade(url))
    if current.json:
        print_json({"revision": revision})
    else:
        out.print(f"event store at revision {revision}")


@shared()
def setup(
    create_namespace: Annotated[
        bool, typer.Option("--create-namespace", help="register the namespace if it is missing")
    ] = False,
    retention_days: Annotated[
        int, typer.Option(min=1, help="retention of a namespace created by --create-namespace")
    ] = 7,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="seconds to retry while Temporal is unreachable")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="= -o json")] = False,
) -> None:
    """Prepare a Temporal cluster and the event store (idempotent): check the namespace,
    register the Asm* search attributes, apply the event-store migrations; report what changed."""
    json_alias(as_json)
    settings = command_settings()

    async def main() -> None:
        dev = read_dev_record(settings.home)
        address = settings.temporal_address or (dev.address if dev else "127.0.0.1:7233")
        client = await connect_when_ready(address, settings.namespace, wait=wait)
        report = await run_setup(
            client,
            database_url=settings.database_url,
            namespace=settings.namespace,
            create_namespace=create_namespace,
            retention=timedelta(days=retention_days),
        )
        if current.json:
            print_json(report.to_dict())
        else:
            out.print(f"Temporal {address}", highlight=False)
            for line in report.lines():
                out.print(line, highlight=False)

    asyncio.run(main())


@shared()
def audit(
    session_id: Annotated[str | None, typer.Argument(help="session id")] = None,
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO time or relative: 30s, 15m, 2h, 7d")
    ] = None,
    type_: Annotated[
        list[EventType] | None, typer.Option("--type", help="only these types (repeatable)")
    ] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", hidden=True, help="= -o json")] = False,
    export: Annotated[
        str | None, typer.Option("--export", metavar="FILE", help="write JSON Lines to FILE")
    ] = None,
    identity: Annotated[
        bool, typer.Option(help="read client identities from Temporal history")
    ] = True,
) -> None:
    """The audit trail of a session or run: status changes, who/what caused them
    (update name, client identity), tool calls and errors; -o json prints JSON Lines."""
    json_alias(jsonl)
    if session_id is None and run is None:
        raise UsageError("give a session id or --run RUN_ID")
    since_at = validated(lambda: parse_since(since)) if since else None
    project = find_project()
    settings = command_settings(project)
    require_store(project)
    types = [t.value for t in type_] if type_ else None

    async def main() -> list[AuditEntry]:
        store = await open_store(settings.database_url)
        try:
            # A typo'd id is not found, as for `asm events`, rather than an empty trail.
            if session_id is not None:
                await store.events(session_id, limit=1, must_exist=True)
            if run is not None and await store.get_run(run) is None:
                raise error(
                    "run_not_found",
                    f"no run {run!r} in the event store: list a session's runs with "
                    "`asm run ls SESSION`",
                    details={"run_id": run},
                )
            temporal: Client | None = None
            dev = read_dev_record(settings.home)
            address = settings.temporal_address or (dev.address if dev else None)
            if identity and address:
                temporal = await connect_temporal(address, settings.namespace)
            elif identity:
                err.print("no Temporal server: identities are not shown")
            return await audit_log(
                store, session_id, run_id=run, since=since_at, types=types, temporal=temporal
            )
        finally:
            await store.close()

    entries = asyncio.run(main())
    if export:
        with open(export, "w", encoding="utf-8") as fp:
            n = write_jsonl(entries, fp)
        err.print(f"{n} audit entries written to {export}")
    elif current.json:
        write_jsonl(entries, sys.stdout)
        sys.stdout.flush()
    else:
        for entry in entries:
            out.print(format_entry(entry), markup=False, highlight=False)
