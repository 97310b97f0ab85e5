"""Operations: ``asm db upgrade``, ``asm setup`` (prepare a cluster) and ``asm audit``."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from typing import Annotated

import typer
from temporalio.client import Client

from agent_session_manager.cli.output import err, out
from agent_session_manager.client.audit import (
    AuditEntry,
    audit_log,
    format_entry,
    parse_since,
    write_jsonl,
)
from agent_session_manager.core.errors import AsmError
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.connect import connect_temporal, connect_when_ready
from agent_session_manager.worker.dev_server import read_dev_record
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.setup import run_setup

db_app = typer.Typer(help="Event-store schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the event-store migrations (SQLite or PostgreSQL, from ASM_DATABASE_URL)."""
    revision = asyncio.run(upgrade(Settings().database_url))
    out.print(f"event store at revision {revision}")


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
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Prepare a Temporal cluster and the event store (idempotent): check the namespace,
    register the Asm* search attributes, apply the event-store migrations; report what changed."""
    settings = Settings()

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
        if as_json:
            print(json.dumps(report.to_dict()), flush=True)
        else:
            out.print(f"Temporal {address}", highlight=False)
            for line in report.lines():
                out.print(line, highlight=False)

    asyncio.run(main())


def audit(
    session_id: Annotated[str | None, typer.Argument(help="session id")] = None,
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO time or relative: 30s, 15m, 2h, 7d")
    ] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="only these types")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON Lines on stdout")] = False,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="write JSON Lines to this file")
    ] = None,
    identity: Annotated[
        bool, typer.Option(help="read client identities from Temporal history")
    ] = True,
) -> None:
    """The audit trail of a session or run: status changes, who/what caused them
    (update name, client identity), tool calls and errors; exportable as JSON Lines."""
    if session_id is None and run is None:
        raise AsmError("validation_error", "give a session id or --run RUN_ID")
    settings = Settings()
    since_at = parse_since(since) if since else None

    async def main() -> list[AuditEntry]:
        store = await open_store(settings.database_url)
        try:
            temporal: Client | None = None
            dev = read_dev_record(settings.home)
            address = settings.temporal_address or (dev.address if dev else None)
            if identity and address:
                temporal = await connect_temporal(address, settings.namespace)
            elif identity:
                err.print("no Temporal server: identities are not shown")
            return await audit_log(
                store, session_id, run_id=run, since=since_at, types=type_, temporal=temporal
            )
        finally:
            await store.close()

    entries = asyncio.run(main())
    if output:
        with open(output, "w", encoding="utf-8") as fp:
            n = write_jsonl(entries, fp)
        err.print(f"{n} audit entries written to {output}")
    elif jsonl:
        write_jsonl(entries, sys.stdout)
        sys.stdout.flush()
    else:
        for entry in entries:
            out.print(format_entry(entry), markup=False, highlight=False)
